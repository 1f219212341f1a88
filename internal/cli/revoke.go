package cli

import (
	"context"
	"flag"
	"fmt"

	"grapevine/client"
	"grapevine/client/apitype"
)

func init() {
	register(&command{
		name:    "revoke",
		args:    "DIR MEMBER-ID",
		summary: "Revoke the certificates the running node in DIR issued to a member; the member and everyone it invited are dropped across the grid.",
		run:     runRevoke,
	})
}

func runRevoke(env *Env, args []string) int {
	c := commands["revoke"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
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
