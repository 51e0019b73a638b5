package netlab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// listener is the firewall's TCP service. It answers each connection with
// the source address it sees, so a client learns what the firewall saw
// without any shared state or timing.
type listener struct {
	ln net.Listener
	wg sync.WaitGroup
}

// startListener listens on every address of port inside netns.
func startListener(netns string, port int) (*listener, error) {
	var ln net.Listener
	err := inNetns(netns, func() (err error) {
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("firewall listener in %s: %w", netns, err)
	}
	l := &listener{ln: ln}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintf(c, "%s\n", src)
			_ = c.Close()
		}
	}()
	return l, nil
}

// StartListener starts the firewall's TCP service in another setup than
// the lab's (the test cluster's firewall): every address of port inside
// netns, answering each connection with the source address it saw. It
// returns the function that stops it.
func StartListener(netns string, port int) (stop func(), err error) {
	l, err := startListener(netns, port)
	if err != nil {
		return nil, err
	}
	return l.close, nil
}

func (l *listener) close() {
	_ = l.ln.Close()
	l.wg.Wait()
}

// Connect opens a TCP connection from inside netns (a name, or the path of
// a pinned namespace) to dst and returns the
// source address the firewall's listener saw, or the connect error (a
// refusal is "connection refused": the firewall resets it).
func Connect(netns string, dst netip.AddrPort) (netip.Addr, error) {
	var seen netip.Addr
	err := inNetns(netns, func() error {
		c, err := net.DialTimeout("tcp", dst.String(), 10*time.Second)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the firewall's answer: %w", err)
		}
		seen, err = netip.ParseAddr(line[:len(line)-1])
		return err
	})
	return seen, err
}

// forwarder listens on 127.0.0.1 inside the node namespace and forwards
// each connection to the API server on the root namespace's loopback: the
// plugin, run inside the node namespace, cannot reach the root's loopback.
// TLS passes through untouched; the API server's certificate is valid for
// 127.0.0.1.
type forwarder struct {
	ln          net.Listener
	addr        string
	targetNetns string
	mu          sync.Mutex
	conns       map[net.Conn]struct{}
	wg          sync.WaitGroup
}

// Forward listens on listenAddr in listenNetns and forwards each connection
// to target in targetNetns ("" is the root namespace, a name or an absolute
// path another one). It returns the address it listens on and a stop that
// closes the listener and every connection.
func Forward(listenNetns, listenAddr, targetNetns, target string) (addr string, stop func(), err error) {
	f, err := forward(listenNetns, listenAddr, targetNetns, target)
	if err != nil {
		return "", nil, err
	}
	return f.addr, f.close, nil
}

func startForwarder(netns, target string) (*forwarder, error) {
	return forward(netns, "127.0.0.1:0", "", target)
}

// forward listens on listenAddr in listenNetns and forwards each
// connection to target in targetNetns ("" is the root namespace).
func forward(listenNetns, listenAddr, targetNetns, target string) (*forwarder, error) {
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp", listenAddr)
		return err
	}
	var err error
	if listenNetns == "" {
		err = listen()
	} else {
		err = inNetns(listenNetns, listen)
	}
	if err != nil {
		return nil, fmt.Errorf("forwarder on %s in %q: %w", listenAddr, listenNetns, err)
	}
	f := &forwarder{ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, targetNetns: targetNetns}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.pipe(in, target)
			}()
		}
	}()
	return f, nil
}

// pipe copies both ways. A dial to the root namespace needs no care:
// threads that entered another namespace are never reused.
func (f *forwarder) pipe(in net.Conn, target string) {
	out, err := dialIn(f.targetNetns, target)
	if err != nil {
		_ = in.Close()
		return
	}
	if !f.track(in, out) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, in)
	delete(f.conns, out)
	f.mu.Unlock()
}

// track registers a connection pair, or closes it when the forwarder is
// closing.
func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

// dialIn dials addr from inside netns ("" is the root namespace).
func dialIn(netns, addr string) (net.Conn, error) {
	if netns == "" {
		return net.DialTimeout("tcp", addr, 10*time.Second)
	}
	var c net.Conn
	err := inNetns(netns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	return c, err
}
