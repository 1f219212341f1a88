package cli

import (
	"context"
	"fmt"

	"grapevine/client"
	"grapevine/client/apitype"
)

func runForget(env *Env, c *command, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want DIR and KEY, got %d arguments", len(pos))
	}
	out, err := callNode(pos[0], func(cl *client.Client, ctx context.Context) (apitype.ForgetResult, error) {
		return cl.Forget(ctx, pos[1])
	})
	if err != nil {
		return fail(env, c, err)
	}
	name := ""
	if out.Nickname != "" {
		name = " (" + remote(out.Nickname, cellRunes) + ")"
	}
	fmt.Fprintf(env.Stdout, "forgot %s%s\n", remote(out.ID, cellRunes), name)
	for _, f := range out.Forgotten {
		fmt.Fprintf(env.Stdout, "  tombstone: %s seqnum %d, reason %s\n", remote(f.Service, cellRunes), f.Seqnum, remote(f.Reason, cellRunes))
	}
	return exitOK
}
