package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what `warrant version` prints: the module version (a
// release tag when built with `go install …@vX`, "(devel)" from a
// checkout), the VCS state the binary was built from, when the go command
// recorded it, and the Go toolchain.
type versionInfo struct {
	Version  string `json:"version"`
	Module   string `json:"module"`
	Revision string `json:"vcs_revision,omitempty"`
	Time     string `json:"vcs_time,omitempty"`
	Modified *bool  `json:"vcs_modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version, v.Module = bi.Main.Version, bi.Main.Path
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			m := s.Value == "true"
			v.Modified = &m
		}
	}
	return v
}

func runVersion(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlagSet(env, "version", "[--json]")
	asJSON := fs.Bool("json", false, "print one single-line JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version takes no arguments")
	}
	v := buildVersion()
	if *asJSON {
		return printJSON(env.stdout, v)
	}
	fmt.Fprintf(env.stdout, "warrant %s\n", v.Version)
	if v.Module != "" {
		fmt.Fprintf(env.stdout, "module    %s\n", v.Module)
	}
	if v.Revision != "" {
		rev := v.Revision
		if v.Modified != nil && *v.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(env.stdout, "revision  %s\n", rev)
	}
	if v.Time != "" {
		fmt.Fprintf(env.stdout, "committed %s\n", v.Time)
	}
	fmt.Fprintf(env.stdout, "go        %s %s\n", v.Go, v.Platform)
	return nil
}
