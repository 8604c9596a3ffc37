package bpfobj

//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem drops -type drop_event Drops ../../bpf/drops.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
