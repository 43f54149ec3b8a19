package connect

import (
	"context"
	"testing"
	"time"
)

func TestPutConnectorUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := PutConnector(ctx, "http://127.0.0.1:1", "x", map[string]string{}); err == nil {
		t.Error("PutConnector to a closed port succeeded")
	}
}
