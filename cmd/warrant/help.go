package main

import (
	"flag"
	"fmt"
	"io"
)

// printCommandUsage prints a command's synopsis and its flags, one a line
// in two aligned columns: the flag and its value, then what it does.
func printCommandUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: warrant %s %s\n", fs.Name(), synopsis)
	type row struct{ flag, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		r := row{flag: "--" + f.Name, usage: usage}
		if value != "" {
			r.flag += " " + value
		}
		switch f.DefValue {
		case "", "false", "0", "0s":
		default:
			if value == "string" {
				r.usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				r.usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		width = max(width, len(r.flag))
		rows = append(rows, r)
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.flag, r.usage)
	}
}
