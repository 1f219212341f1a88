package cli

import (
	"context"
	"fmt"

	"grapevine/client"
	"grapevine/client/apitype"
)

func runRevoke(env *Env, c *command, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want DIR and MEMBER-ID, got %d arguments", len(pos))
	}
	out, err := callNode(pos[0], func(cl *client.Client, ctx context.Context) (apitype.Revoked, error) {
		return cl.Revoke(ctx, pos[1])
	})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "revoked %d certificate(s) of %s\n", len(out.Revocations), pos[1])
	return exitOK
}
