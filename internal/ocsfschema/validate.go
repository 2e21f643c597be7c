package ocsfschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Validate checks one event, a JSON object, against the schema and returns
// every problem found, joined, or nil. It is stricter than the OCSF
// server's validator where that one only warns:
//
//   - the class exists (class_uid), class_name is its caption,
//     category_uid and category_name its category's;
//   - type_uid is class_uid*100 + activity_id and type_name the schema's
//     caption for it, "<class caption>: <activity caption>" (so for
//     activity 99 "...: Other", whatever activity_name says);
//   - metadata.profiles names only profiles the class applies; attributes
//     a profile brings are allowed only when it is declared, in the event
//     and in every object inside it;
//   - every required attribute is present, every at_least_one and just_one
//     constraint holds, and no attribute is unknown to the class or
//     object (objects of type "object", like unmapped, are open);
//   - every value has its dictionary type (string_t and its refinements
//     with max_len and regex, integer_t within 32 bits, long_t and
//     timestamp_t within 64, float_t, boolean_t, objects, arrays exactly
//     where is_array says);
//   - enum values are defined, and an enum's sibling (severity for
//     severity_id, ...) is the value's caption, except for 99 Other,
//     whose sibling must be the source's own term, not "Other";
//   - no deprecated attribute is used.
func (s *Schema) Validate(record []byte) error {
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	ev, ok := v.(map[string]any)
	if !ok {
		return errors.New("not a JSON object")
	}
	c := &check{s: s}
	classUID, ok := intOf(ev["class_uid"])
	if !ok {
		return errors.New("class_uid: missing or not an integer")
	}
	class, ok := s.classes[int(classUID)]
	if !ok {
		return fmt.Errorf("class_uid: no class %d in the schema", classUID)
	}
	c.profiles = c.declaredProfiles(ev, class)
	c.item("", ev, class)
	c.classification(ev, class)
	if len(c.problems) == 0 {
		return nil
	}
	sort.Strings(c.problems)
	errs := make([]error, len(c.problems))
	for i, p := range c.problems {
		errs[i] = errors.New(p)
	}
	return errors.Join(errs...)
}

type check struct {
	s        *Schema
	profiles map[string]bool
	problems []string
}

func (c *check) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// declaredProfiles returns metadata.profiles, checking each is a profile
// the class applies. (Type errors are reported by the metadata check.)
func (c *check) declaredProfiles(ev map[string]any, class *Item) map[string]bool {
	out := map[string]bool{}
	md, _ := ev["metadata"].(map[string]any)
	list, _ := md["profiles"].([]any)
	for _, p := range list {
		name, ok := p.(string)
		if !ok {
			continue
		}
		switch {
		case !c.s.profiles[name]:
			c.addf("metadata.profiles: unknown profile %q", name)
		case !slices.Contains(class.Profiles, name):
			c.addf("metadata.profiles: class %s does not apply profile %q", class.Name, name)
		default:
			out[name] = true
		}
	}
	return out
}

// classification checks the attributes that identify the class and type.
func (c *check) classification(ev map[string]any, class *Item) {
	if v, ok := ev["class_name"]; ok && v != class.Caption {
		c.addf("class_name: %v, want %q", v, class.Caption)
	}
	if v, ok := intOf(ev["category_uid"]); ok && int(v) != class.CategoryUID {
		c.addf("category_uid: %d, want %d for class %d", v, class.CategoryUID, class.UID)
	}
	if v, ok := ev["category_name"]; ok && v != class.CategoryCaption {
		c.addf("category_name: %v, want %q", v, class.CategoryCaption)
	}
	activity, ok1 := intOf(ev["activity_id"])
	typeUID, ok2 := intOf(ev["type_uid"])
	if !ok1 || !ok2 {
		return
	}
	if want := int64(class.UID)*100 + activity; typeUID != want {
		c.addf("type_uid: %d, want %d (class_uid %d * 100 + activity_id %d)", typeUID, want, class.UID, activity)
	}
}

// item checks an event or object against a class or object definition.
func (c *check) item(path string, m map[string]any, it *Item) {
	attrs := map[string]*Attribute{}
	for n, a := range it.Attributes {
		if a.Profile == "" || c.profiles[a.Profile] {
			attrs[n] = a
		}
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := attrs[n]
		v, present := m[n]
		if !present {
			if a.Requirement == "required" {
				c.addf("%s: required attribute missing (%s %s)", join(path, n), kind(it), it.Name)
			}
			continue
		}
		if a.Deprecated {
			c.addf("%s: deprecated attribute", join(path, n))
		}
		c.value(join(path, n), v, a, m)
	}
	if len(it.Attributes) > 0 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := attrs[k]; ok {
				continue
			}
			if a, ok := it.Attributes[k]; ok {
				c.addf("%s: attribute of profile %q, which the event does not declare in metadata.profiles", join(path, k), a.Profile)
				continue
			}
			c.addf("%s: unknown attribute (%s %s)", join(path, k), kind(it), it.Name)
		}
	}
	if len(it.AtLeastOne) > 0 && !slices.ContainsFunc(it.AtLeastOne, func(n string) bool { _, ok := m[n]; return ok }) {
		c.addf("%s: object %s needs at least one of %v", orRoot(path), it.Name, it.AtLeastOne)
	}
	if len(it.JustOne) > 0 {
		n := 0
		for _, k := range it.JustOne {
			if _, ok := m[k]; ok {
				n++
			}
		}
		if n != 1 {
			c.addf("%s: object %s needs exactly one of %v, has %d", orRoot(path), it.Name, it.JustOne, n)
		}
	}
}

// value checks one attribute's value; parent holds its sibling.
func (c *check) value(path string, v any, a *Attribute, parent map[string]any) {
	if a.IsArray {
		list, ok := v.([]any)
		if !ok {
			c.addf("%s: want an array of %s, got %s", path, a.Type, typeOf(v))
			return
		}
		for i, e := range list {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.one(p, e, a.Type) && a.Enum != nil {
				if _, ok := a.Enum[enumKey(e)]; !ok {
					c.addf("%s: %s is not a value of the enum", p, enumKey(e))
				}
			}
		}
		return
	}
	if !c.one(path, v, a.Type) || a.Enum == nil {
		return
	}
	key := enumKey(v)
	caption, ok := a.Enum[key]
	if !ok {
		c.addf("%s: %s is not a value of the enum", path, key)
		return
	}
	if a.Sibling == "" {
		return
	}
	sib, present := parent[a.Sibling]
	if !present {
		return
	}
	if key == "99" {
		if sib == caption {
			c.addf("%s: %q for %s 99 (Other): it must be the source's own term", join(parentPath(path), a.Sibling), sib, a.Name)
		}
		return
	}
	if sib != caption {
		c.addf("%s: %v, want %q, the caption of %s %s", join(parentPath(path), a.Sibling), sib, caption, a.Name, key)
	}
}

// one checks a single (non-array) value of the named type and reports
// whether it has the type.
func (c *check) one(path string, v any, typ string) bool {
	switch {
	case typ == "object" || typ == "object_t":
		if _, ok := v.(map[string]any); !ok {
			c.addf("%s: want an object, got %s", path, typeOf(v))
			return false
		}
		return true
	case c.isScalar(typ):
		return c.scalar(path, v, typ)
	}
	o, ok := c.s.objects[typ]
	if !ok {
		c.addf("%s: object type %q is not in the schema files", path, typ)
		return false
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.addf("%s: want a %s object, got %s", path, typ, typeOf(v))
		return false
	}
	c.item(path, m, o)
	return true
}

func (c *check) isScalar(typ string) bool { _, ok := c.s.types[typ]; return ok }

// scalar checks v against a dictionary type and the types it refines.
func (c *check) scalar(path string, v any, typ string) bool {
	declared := typ
	for depth := 0; typ != ""; depth++ {
		td, ok := c.s.types[typ]
		if !ok || depth > 8 {
			c.addf("%s: type %q is not in the dictionary", path, typ)
			return false
		}
		if !c.base(path, v, typ, declared) {
			return false
		}
		if s, ok := v.(string); ok {
			if td.maxLen > 0 && utf8.RuneCountInString(s) > td.maxLen {
				c.addf("%s: longer than %d characters (%s)", path, td.maxLen, typ)
				return false
			}
			if td.regex != "" {
				re, err := regexp.Compile(td.regex)
				if err != nil {
					c.addf("%s: cannot check %s: its regex does not compile in Go: %v", path, typ, err)
					return false
				}
				if !re.MatchString(s) {
					c.addf("%s: %q does not match %s", path, s, typ)
					return false
				}
			}
		}
		if len(td.rng) == 2 {
			if f, ok := floatOf(v); ok && (f < td.rng[0] || f > td.rng[1]) {
				c.addf("%s: %v outside %s range %v", path, v, typ, td.rng)
				return false
			}
		}
		typ = td.base
	}
	return true
}

// base checks the JSON kind of the base types; refinements pass.
func (c *check) base(path string, v any, typ, declared string) bool {
	ok := true
	switch typ {
	case "string_t":
		_, ok = v.(string)
	case "boolean_t":
		_, ok = v.(bool)
	case "integer_t":
		n, isInt := intOf(v)
		ok = isInt && n >= math.MinInt32 && n <= math.MaxInt32
	case "long_t":
		_, ok = intOf(v)
	case "float_t":
		_, ok = floatOf(v)
	case "json_t":
	}
	if !ok {
		want := declared
		if typ != declared {
			want += " (" + typ + ")"
		}
		c.addf("%s: want %s, got %s %v", path, want, typeOf(v), v)
	}
	return ok
}

func intOf(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

func floatOf(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func enumKey(v any) string {
	switch t := v.(type) {
	case json.Number:
		return t.String()
	case string:
		return t
	}
	return fmt.Sprint(v)
}

func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func kind(it *Item) string {
	if it.UID != 0 || it.CategoryCaption != "" {
		return "class"
	}
	return "object"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orRoot(path string) string {
	if path == "" {
		return "(event)"
	}
	return path
}

// parentPath strips the last element of a dotted path.
func parentPath(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[:i]
		}
	}
	return ""
}
