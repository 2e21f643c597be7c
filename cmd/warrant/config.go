package main

import (
	"bufio"
	"flag"
	"os"
	"strconv"
	"strings"

	"github.com/warrantlog/warrant/proofs"
)

// Config files (`warrant serve --config FILE`).
//
// A config file sets serve's flags, one per line, as "name = value", where
// name is the flag's name without dashes:
//
//	# /etc/warrant/warrant.conf
//	data = /var/lib/warrant
//	listen = 0.0.0.0:8750
//	ops-listen = 127.0.0.1:8751
//	registrar-key = /etc/warrant/registrar.pub
//	registrar-key = /etc/warrant/registrar-2.pub
//	log-format = json
//
// Blank lines and lines starting with # are ignored; a value may be written
// as a double-quoted Go string. A repeatable flag (registrar-key, admin-key)
// may appear on several lines and collects them all; any other flag may
// appear once. Unknown names are an error.
//
// Precedence: a flag on the command line, then its environment variable
// (WARRANT_DATA, WARRANT_LISTEN), then the config file, then the built-in
// default. A repeatable flag given on the command line replaces the file's
// list rather than adding to it.

// serveFlagEnv names the environment variables that serve's flags default
// to; a set variable beats the config file.
var serveFlagEnv = map[string]string{
	"data":   "WARRANT_DATA",
	"listen": "WARRANT_LISTEN",
}

// configSetting is one "name = value" line.
type configSetting struct {
	name, value string
	line        int
}

// readConfigFile parses a config file.
func readConfigFile(path string) ([]configSetting, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonConfigUnreadable, Err: err}
	}
	defer f.Close()
	var out []configSetting
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, usagef("%s:%d: want \"name = value\", got %q", path, n, line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.HasPrefix(value, `"`) {
			u, err := strconv.Unquote(value)
			if err != nil {
				return nil, usagef("%s:%d: bad quoted value %s", path, n, value)
			}
			value = u
		}
		out = append(out, configSetting{name: strings.TrimLeft(name, "-"), value: value, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonConfigUnreadable, Err: err}
	}
	return out, nil
}

// applyConfigFile sets, from the config file at path, every flag of fs
// that was not given on the command line and whose environment variable
// (envVars) is not set. fs must have been parsed already.
func applyConfigFile(fs *flag.FlagSet, path string, env *cmdEnv, envVars map[string]string) error {
	if path == "" {
		return nil
	}
	settings, err := readConfigFile(path)
	if err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	seen := map[string]int{}
	for _, s := range settings {
		f := fs.Lookup(s.name)
		if f == nil || s.name == "config" {
			return usagef("%s:%d: unknown setting %q (settings are %s's flag names)", path, s.line, s.name, fs.Name())
		}
		_, repeatable := f.Value.(*stringList)
		if prev, dup := seen[s.name]; dup && !repeatable {
			return usagef("%s:%d: %s is already set on line %d", path, s.line, s.name, prev)
		}
		seen[s.name] = s.line
		if explicit[s.name] {
			continue // the command line wins
		}
		if v := envVars[s.name]; v != "" && env.getenv(v) != "" {
			continue // so does the environment
		}
		if err := fs.Set(s.name, s.value); err != nil {
			return usagef("%s:%d: %s: %v", path, s.line, s.name, err)
		}
	}
	return nil
}
