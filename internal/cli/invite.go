package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
)

type inviteOpts struct {
	expires *string
	uses    *int
}

func inviteFlags(fs *flag.FlagSet) inviteOpts {
	return inviteOpts{
		expires: fs.String("expires", "7d", "the `DURATION` the code can be redeemed for, on this node's clock (e.g. 7d, 12h)"),
		uses:    fs.Int("uses", 1, "let `N` nodes join with the code"),
	}
}

func runInvite(env *Env, c *command, o inviteOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	out, err := callNode(pos[0], func(cl *client.Client, ctx context.Context) (apitype.InviteCode, error) {
		return cl.Invite(ctx, *o.uses, *o.expires)
	})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintln(env.Stdout, out.Code)
	fmt.Fprintf(env.Stderr, "invite %s: %d use(s), until %s. The new node runs: grapevine join CODE\n", out.ID, out.Uses, out.Expires.Format(time.RFC3339))
	return exitOK
}
