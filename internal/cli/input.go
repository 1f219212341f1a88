package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// input is what a command read from its FILE|- argument.
type input struct {
	name  string // the file's name, or "stdin"
	stdin bool
	data  []byte
}

// tooLargeError: the input is over the command's bound.
type tooLargeError struct {
	name  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %d bytes", e.name, e.limit)
}

// readInput reads the file arg names, or standard input for "-",
// refusing more than limit bytes. Its errors start with the input's name.
func readInput(env *Env, arg string, limit int64) (input, error) {
	in := input{name: "stdin", stdin: true}
	r := env.Stdin
	if arg != "-" {
		f, err := os.Open(arg)
		if err != nil {
			return input{name: arg}, fmt.Errorf("%s: %w", arg, pathless(err))
		}
		defer f.Close()
		in, r = input{name: arg}, f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return in, fmt.Errorf("%s: %w", in.name, pathless(err))
	}
	if int64(len(data)) > limit {
		return in, &tooLargeError{in.name, limit}
	}
	in.data = data
	return in, nil
}

// pathless drops the operation and path of an *fs.PathError, which the
// message names already.
func pathless(err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
