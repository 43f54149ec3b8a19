package grpcgateway

import (
	"context"
	"net"
	"sync"
)

// memListener is a net.Listener of in-memory connections (net.Pipe): the REST gateway reaches
// the in-process gRPC server through it, with no socket and no TLS to terminate.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept returns the server's end of the next connection dialled, or net.ErrClosed once the
// listener is closed.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and DialContext; connections made stay open until their ends close them.
func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr names the listener.
func (l *memListener) Addr() net.Addr { return memAddr{} }

// DialContext returns the client's end of a new connection once the server accepts it.
func (l *memListener) DialContext(ctx context.Context) (net.Conn, error) {
	server, client := net.Pipe()
	var err error
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		err = net.ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	server.Close()
	client.Close()
	return nil, err
}

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "in-process" }
