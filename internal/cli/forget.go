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
		name:    "forget",
		args:    "DIR KEY",
		summary: "Make the running node in DIR forget a server now: its records are dropped and tombstoned, so only a newer seqnum from it is taken back. KEY is its v0- ID or an unambiguous prefix.",
		run:     runForget,
	})
}

func runForget(env *Env, args []string) int {
	c := commands["forget"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
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
