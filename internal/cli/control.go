package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"grapevine/client"
)

// callNode calls the running node in dir through its status endpoint,
// with the node's API token (DIR/private/api_auth_token), and words its
// failures for the operator. call is a method of client.Client, such as
// (*client.Client).Status, or a function like one.
func callNode[T any](dir string, call func(*client.Client, context.Context) (T, error)) (T, error) {
	var zero T
	c, err := client.ForDir(dir)
	if err != nil {
		return zero, fmt.Errorf("%s is not running, or runs without a status endpoint (start it with 'grapevine run %s'; set status in grapevine.yaml)", dir, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := call(c, ctx)
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		return zero, fmt.Errorf("%s is not running (%v); start it with 'grapevine run %s'", dir, err, dir)
	case errors.Is(err, client.ErrUnauthorized):
		if _, terr := client.ReadToken(dir); terr != nil {
			return zero, fmt.Errorf("%w (%v)", err, terr)
		}
	}
	return v, err
}
