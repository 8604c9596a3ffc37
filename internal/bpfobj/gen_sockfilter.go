package bpfobj

//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem sockfilter_probe SockfilterProbe ../../bpf/sockfilter_probe.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
