package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"grapevine/client"
	"grapevine/client/apitype"
)

func runMembers(env *Env, c *command, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	m, err := callNode(pos[0], (*client.Client).Members)
	if err != nil {
		return fail(env, c, err)
	}
	printTree(env.Stdout, m)
	return exitOK
}

// printTree prints the invitation tree from the founder down.
func printTree(w io.Writer, m apitype.Members) {
	kids := map[string][]apitype.MemberEdge{}
	for _, e := range m.Invites {
		kids[e.Issuer] = append(kids[e.Issuer], e)
	}
	for k := range kids {
		sort.Slice(kids[k], func(i, j int) bool { return kids[k][i].Subject < kids[k][j].Subject })
	}
	fmt.Fprintf(w, "%s (founder)\n", remote(m.Grid, cellRunes))
	var walk func(id string, depth int, seen map[string]bool)
	walk = func(id string, depth int, seen map[string]bool) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, e := range kids[id] {
			note := ""
			if len(e.Services) > 0 {
				note = " [" + remote(strings.Join(e.Services, ", "), cellRunes) + "]"
			}
			if e.Revoked {
				note += " REVOKED"
			}
			fmt.Fprintf(w, "%s└ %s%s\n", strings.Repeat("  ", depth), remote(e.Subject, cellRunes), note)
			walk(e.Subject, depth+1, seen)
		}
	}
	walk(m.Grid, 0, map[string]bool{})
}
