package bpfobj

//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem rtt -type rtt_event Rtt ../../bpf/rtt.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
