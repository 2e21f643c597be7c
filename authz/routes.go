package authz

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Route is the scopes a token needs for the requests under a path prefix.
type Route struct {
	// Method, when set, limits the route to requests with this method
	// (upper case); a route without one covers every method.
	Method string
	// Prefix is a path ("/tickets"): it covers the path itself and every
	// path under it ("/tickets/7"), not "/ticketsx". "/" covers all.
	Prefix string
	// Scopes are required, each of them; none: any valid token will do.
	Scopes []string
}

func (r Route) String() string {
	s := r.Prefix + "=" + strings.Join(r.Scopes, ",")
	if r.Method != "" {
		return r.Method + " " + s
	}
	return s
}

// ParseRoute reads "[METHOD ]PREFIX=SCOPE[,SCOPE]...", as --route and
// the lines of a routes file give it: "/tickets=tickets:read",
// "POST /tickets=tickets:write", "/health=" (a valid token, no scope).
func ParseRoute(s string) (Route, error) {
	spec, scopes, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return Route{}, fmt.Errorf("route %q: want [METHOD ]PREFIX=SCOPE[,SCOPE]", s)
	}
	var r Route
	if m, p, ok := strings.Cut(strings.TrimSpace(spec), " "); ok {
		r.Method, r.Prefix = m, strings.TrimSpace(p)
		if r.Method == "" || strings.ToUpper(r.Method) != r.Method || strings.ContainsAny(r.Method, "/ \t") {
			return Route{}, fmt.Errorf("route %q: the method must be an upper-case token like GET", s)
		}
	} else {
		r.Prefix = strings.TrimSpace(spec)
	}
	if !strings.HasPrefix(r.Prefix, "/") || strings.ContainsAny(r.Prefix, "?# \t") {
		return Route{}, fmt.Errorf("route %q: the prefix must be a path starting with /", s)
	}
	if r.Prefix != "/" {
		r.Prefix = strings.TrimSuffix(r.Prefix, "/")
	}
	for sc := range strings.SplitSeq(scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			if strings.ContainsAny(sc, " \t\"\\") {
				return Route{}, fmt.Errorf("route %q: scope %q has a space or quote", s, sc)
			}
			r.Scopes = append(r.Scopes, sc)
		}
	}
	slices.Sort(r.Scopes)
	r.Scopes = slices.Compact(r.Scopes)
	return r, nil
}

// ParseRoutes reads a routes file: one route a line (ParseRoute), blank
// lines and lines starting with # ignored.
func ParseRoutes(rd io.Reader) ([]Route, error) {
	var out []Route
	sc := bufio.NewScanner(rd)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := ParseRoute(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// match returns the route for a request: the longest prefix covering
// path, a route naming the method before one that does not; nil when no
// route covers it.
func match(routes []Route, method, path string) *Route {
	var best *Route
	for i := range routes {
		r := &routes[i]
		if r.Method != "" && r.Method != method {
			continue
		}
		if r.Prefix != "/" && path != r.Prefix && !strings.HasPrefix(path, r.Prefix+"/") {
			continue
		}
		if best == nil || len(r.Prefix) > len(best.Prefix) || (len(r.Prefix) == len(best.Prefix) && best.Method == "" && r.Method != "") {
			best = r
		}
	}
	return best
}
