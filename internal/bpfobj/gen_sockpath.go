package bpfobj

// The socket-path objects, one line each (a new socket-path command adds its
// line here); the packet path and the benchmark object are in gen.go.

//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem retrans -type retrans_event Retrans ../../bpf/retrans.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem resets -type reset_event Resets ../../bpf/resets.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem states -type state_event States ../../bpf/states.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem rtt -type rtt_event Rtt ../../bpf/rtt.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem drops -type drop_event Drops ../../bpf/drops.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang -target bpfel -go-package bpfobj -output-stem sockfilter_probe SockfilterProbe ../../bpf/sockfilter_probe.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
