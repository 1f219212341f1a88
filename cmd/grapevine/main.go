// Command grapevine is decentralized server introduction for storage grids.
// Run "grapevine help" for the subcommands.
package main

import (
	"os"

	"grapevine/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
