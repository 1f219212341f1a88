package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
)

func init() {
	register(&command{
		name:    "invite",
		args:    "[--expires 7d] [--uses 1] DIR",
		summary: "Print an invite code to the grid of the running node in DIR.",
		run:     runInvite,
	})
}

func runInvite(env *Env, args []string) int {
	c := commands["invite"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	expires := fs.String("expires", "7d", "how long the code can be redeemed, on this node's clock (e.g. 7d, 12h)")
	uses := fs.Int("uses", 1, "how many nodes may join with the code")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	out, err := callNode(pos[0], func(cl *client.Client, ctx context.Context) (apitype.InviteCode, error) {
		return cl.Invite(ctx, *uses, *expires)
	})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintln(env.Stdout, out.Code)
	fmt.Fprintf(env.Stderr, "invite %s: %d use(s), until %s. The new node runs: grapevine join CODE\n", out.ID, out.Uses, out.Expires.Format(time.RFC3339))
	return exitOK
}
