// Package ocsfschema checks OCSF events against an OCSF schema given as the
// schema repository's own JSON files (dictionary.json, categories.json,
// events/, objects/, profiles/, includes/), resolved the way OCSF compiles
// them: a class extends its parent up to base_event and takes its category
// from the chain; an object extends its parent; "$include" merges the named
// files' attributes under the including file's own; attributes that come
// from a profile carry that profile unless the class resets "profile" to
// null; every attribute takes its type, array-ness, enum and sibling from
// the dictionary, overridden by the class or object.
//
// It exists for tests: warrant's SIEM output is checked against the
// vendored official 1.3.0 files, so a mapping that an OCSF consumer would
// reject fails CI. Only the files a schema subset needs must be present: a
// class or object the events use but the files lack is an error, never a
// silent pass.
// Observables are not checked, and the datetime profile's synthetic *_dt
// attributes are not generated: a record using them fails.
package ocsfschema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Attribute is a resolved attribute of a class or object.
type Attribute struct {
	Name        string
	Type        string // a dictionary type (string_t, ...) or an object name
	IsArray     bool
	Requirement string // required, recommended, optional
	// Profile is the profile that brings the attribute, "" when the class
	// or object has it unconditionally.
	Profile string
	// Enum maps the allowed values (as decimal strings for integer enums)
	// to their captions; nil when the attribute is not an enum.
	Enum map[string]string
	// Sibling is the attribute holding the enum value's caption.
	Sibling    string
	Deprecated bool
}

// Item is a resolved class or object.
type Item struct {
	Name    string
	Caption string
	// UID is the class_uid (category uid * 1000 + class uid); 0 for objects.
	UID         int
	CategoryUID int
	// CategoryCaption is the category's caption; "" for objects.
	CategoryCaption string
	Attributes      map[string]*Attribute
	// Profiles are the profiles the item and its ancestors apply.
	Profiles []string
	// AtLeastOne and JustOne are the item's constraints.
	AtLeastOne, JustOne []string
}

// typeDef is a dictionary scalar type.
type typeDef struct {
	base   string // the type it refines, "" for a base type
	maxLen int
	regex  string
	rng    []float64
}

// Schema is a resolved OCSF schema.
type Schema struct {
	Version string
	classes map[int]*Item
	objects map[string]*Item
	// profiles are the names of every profile file.
	profiles map[string]bool
	types    map[string]typeDef
}

// Class returns the class with the given class_uid.
func (s *Schema) Class(uid int) (*Item, bool) {
	c, ok := s.classes[uid]
	return c, ok
}

// Object returns the named object, if its file was present.
func (s *Schema) Object(name string) (*Item, bool) {
	o, ok := s.objects[name]
	return o, ok
}

// loader resolves the raw files of one schema directory.
type loader struct {
	fsys       fs.FS
	dict       map[string]any
	categories map[string]any
	rawClasses map[string]map[string]any // by name
	rawObjects map[string]map[string]any // by name
	resolved   map[string]map[string]any // resolved attributes, by "class:" / "object:" name
}

// Load reads and resolves the schema in dir.
func Load(dir string) (*Schema, error) {
	return LoadFS(os.DirFS(dir))
}

// LoadFS reads and resolves the schema in fsys.
func LoadFS(fsys fs.FS) (*Schema, error) {
	l := &loader{fsys: fsys, rawClasses: map[string]map[string]any{}, rawObjects: map[string]map[string]any{}, resolved: map[string]map[string]any{}}
	var err error
	if l.dict, err = l.read("dictionary.json"); err != nil {
		return nil, err
	}
	if l.categories, err = l.read("categories.json"); err != nil {
		return nil, err
	}
	version, err := l.read("version.json")
	if err != nil {
		return nil, err
	}
	s := &Schema{classes: map[int]*Item{}, objects: map[string]*Item{}, profiles: map[string]bool{}, types: map[string]typeDef{}}
	s.Version, _ = version["version"].(string)
	for name, t := range mapOf(mapOf(l.dict["types"])["attributes"]) {
		tm := mapOf(t)
		td := typeDef{regex: str(tm["regex"])}
		td.base = str(tm["type"])
		if n, ok := tm["max_len"].(float64); ok {
			td.maxLen = int(n)
		}
		for _, r := range listOf(tm["range"]) {
			if f, ok := r.(float64); ok {
				td.rng = append(td.rng, f)
			}
		}
		s.types[name] = td
	}
	files := map[string][]string{}
	for _, dir := range []string{"events", "objects", "profiles"} {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".json") {
				files[dir] = append(files[dir], p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ocsfschema: listing %s: %w", dir, err)
		}
	}
	for _, p := range files["profiles"] {
		raw, err := l.read(p)
		if err != nil {
			return nil, err
		}
		s.profiles[str(raw["name"])] = true
	}
	for _, p := range files["events"] {
		raw, err := l.read(p)
		if err != nil {
			return nil, err
		}
		l.rawClasses[str(raw["name"])] = raw
	}
	for _, p := range files["objects"] {
		raw, err := l.read(p)
		if err != nil {
			return nil, err
		}
		l.rawObjects[str(raw["name"])] = raw
	}
	for name, raw := range l.rawClasses {
		if _, ok := raw["uid"]; !ok && name != "base_event" {
			continue // an abstract parent (iam, application, finding)
		}
		c, err := l.class(name)
		if err != nil {
			return nil, err
		}
		if _, dup := s.classes[c.UID]; dup {
			return nil, fmt.Errorf("ocsfschema: two classes with uid %d", c.UID)
		}
		s.classes[c.UID] = c
	}
	for name := range l.rawObjects {
		o, err := l.object(name)
		if err != nil {
			return nil, err
		}
		s.objects[name] = o
	}
	return s, nil
}

func (l *loader) read(p string) (map[string]any, error) {
	data, err := fs.ReadFile(l.fsys, filepath.ToSlash(p))
	if err != nil {
		return nil, fmt.Errorf("ocsfschema: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("ocsfschema: %s: %w", p, err)
	}
	return m, nil
}

// attributes returns a file's attributes with its "$include"s resolved: the
// included files' attributes first (annotated with their profile when the
// included file is a profile), the file's own merged over them.
func (l *loader) attributes(raw map[string]any, seen map[string]bool) (map[string]any, error) {
	own := mapOf(raw["attributes"])
	out := map[string]any{}
	for _, inc := range listOf(own["$include"]) {
		p := path.Clean(str(inc))
		if seen[p] {
			return nil, fmt.Errorf("ocsfschema: include cycle at %s", p)
		}
		seen[p] = true
		incRaw, err := l.read(p)
		if err != nil {
			return nil, err
		}
		attrs, err := l.attributes(incRaw, seen)
		if err != nil {
			return nil, err
		}
		delete(seen, p)
		if str(incRaw["meta"]) == "profile" {
			for _, a := range attrs {
				am := mapOf(a)
				if _, set := am["profile"]; !set {
					am["profile"] = str(incRaw["name"])
				}
			}
		}
		out = merge(out, attrs).(map[string]any)
	}
	rest := map[string]any{}
	for k, v := range own {
		if k != "$include" {
			rest[k] = v
		}
	}
	return merge(out, rest).(map[string]any), nil
}

// class resolves a class: its parent's attributes, its own merged over
// them, each merged over its dictionary entry.
func (l *loader) class(name string) (*Item, error) {
	attrs, profiles, category, err := l.classChain(name, 0)
	if err != nil {
		return nil, err
	}
	raw := l.rawClasses[name]
	it := &Item{Name: name, Caption: str(raw["caption"]), Profiles: profiles}
	cat := mapOf(mapOf(l.categories["attributes"])[category])
	if category != "other" && cat == nil {
		return nil, fmt.Errorf("ocsfschema: class %s: unknown category %q", name, category)
	}
	if cat != nil {
		it.CategoryUID, it.CategoryCaption = int(num(cat["uid"])), str(cat["caption"])
	} else {
		it.CategoryCaption = "Uncategorized"
	}
	it.UID = it.CategoryUID*1000 + int(num(raw["uid"]))
	it.Attributes, err = l.finish(attrs)
	if err != nil {
		return nil, fmt.Errorf("ocsfschema: class %s: %w", name, err)
	}
	// As OCSF does, the class defines the enums of its own identifiers:
	// class_uid and category_uid have the one value, type_uid one value
	// per activity, captioned "<class caption>: <activity caption>".
	if a := it.Attributes["class_uid"]; a != nil {
		a.Enum = map[string]string{strconv.Itoa(it.UID): it.Caption}
	}
	if a := it.Attributes["category_uid"]; a != nil {
		a.Enum = map[string]string{strconv.Itoa(it.CategoryUID): it.CategoryCaption}
	}
	if a, act := it.Attributes["type_uid"], it.Attributes["activity_id"]; a != nil && act != nil {
		a.Enum = map[string]string{}
		for v, caption := range act.Enum {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("ocsfschema: class %s: activity_id value %q", name, v)
			}
			a.Enum[strconv.Itoa(it.UID*100+n)] = it.Caption + ": " + caption
		}
	}
	return it, nil
}

func (l *loader) classChain(name string, depth int) (map[string]any, []string, string, error) {
	raw, ok := l.rawClasses[name]
	if !ok {
		return nil, nil, "", fmt.Errorf("ocsfschema: class %q not present", name)
	}
	if depth > 16 {
		return nil, nil, "", fmt.Errorf("ocsfschema: class %q: extends too deep", name)
	}
	own, err := l.attributes(raw, map[string]bool{})
	if err != nil {
		return nil, nil, "", err
	}
	attrs, category := map[string]any{}, ""
	var profiles []string
	if parent := str(raw["extends"]); parent != "" {
		attrs, profiles, category, err = l.classChain(parent, depth+1)
		if err != nil {
			return nil, nil, "", err
		}
	}
	if c := str(raw["category"]); c != "" {
		category = c
	}
	for _, p := range listOf(raw["profiles"]) {
		profiles = append(profiles, str(p))
	}
	return merge(attrs, own).(map[string]any), profiles, category, nil
}

// object resolves an object the same way as a class, without category.
func (l *loader) object(name string) (*Item, error) {
	attrs, profiles, err := l.objectChain(name, 0)
	if err != nil {
		return nil, err
	}
	raw := l.rawObjects[name]
	it := &Item{Name: name, Caption: str(raw["caption"]), Profiles: profiles}
	cons := mapOf(raw["constraints"])
	for _, a := range listOf(cons["at_least_one"]) {
		it.AtLeastOne = append(it.AtLeastOne, str(a))
	}
	for _, a := range listOf(cons["just_one"]) {
		it.JustOne = append(it.JustOne, str(a))
	}
	it.Attributes, err = l.finish(attrs)
	if err != nil {
		return nil, fmt.Errorf("ocsfschema: object %s: %w", name, err)
	}
	return it, nil
}

func (l *loader) objectChain(name string, depth int) (map[string]any, []string, error) {
	raw, ok := l.rawObjects[name]
	if !ok {
		return nil, nil, fmt.Errorf("ocsfschema: object %q not present", name)
	}
	if depth > 16 {
		return nil, nil, fmt.Errorf("ocsfschema: object %q: extends too deep", name)
	}
	own, err := l.attributes(raw, map[string]bool{})
	if err != nil {
		return nil, nil, err
	}
	attrs := map[string]any{}
	var profiles []string
	if parent := str(raw["extends"]); parent != "" {
		if attrs, profiles, err = l.objectChain(parent, depth+1); err != nil {
			return nil, nil, err
		}
	}
	for _, p := range listOf(raw["profiles"]) {
		profiles = append(profiles, str(p))
	}
	return merge(attrs, own).(map[string]any), profiles, nil
}

// finish merges each attribute over its dictionary entry and types it.
func (l *loader) finish(attrs map[string]any) (map[string]*Attribute, error) {
	dictAttrs := mapOf(l.dict["attributes"])
	out := map[string]*Attribute{}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d, ok := dictAttrs[n]
		if !ok {
			return nil, fmt.Errorf("attribute %q is not in the dictionary", n)
		}
		m := merge(clone(d), attrs[n]).(map[string]any)
		a := &Attribute{
			Name:        n,
			Type:        str(m["type"]),
			IsArray:     m["is_array"] == true,
			Requirement: str(m["requirement"]),
			Profile:     str(m["profile"]),
			Sibling:     str(m["sibling"]),
		}
		_, a.Deprecated = m["@deprecated"]
		if a.Requirement == "" {
			a.Requirement = "optional"
		}
		if e := mapOf(m["enum"]); e != nil {
			a.Enum = map[string]string{}
			for v, def := range e {
				a.Enum[v] = str(mapOf(def)["caption"])
			}
		}
		out[n] = a
	}
	return out, nil
}

// merge deep-merges over onto base: maps key by key, anything else
// replaced. An explicit null in over replaces too (that is how a class
// resets an attribute's "profile").
func merge(base, over any) any {
	bm, ok1 := base.(map[string]any)
	om, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return clone(over)
	}
	out := clone(bm).(map[string]any)
	for k, v := range om {
		if cur, ok := out[k]; ok {
			out[k] = merge(cur, v)
		} else {
			out[k] = clone(v)
		}
	}
	return out
}

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = clone(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = clone(x)
		}
		return s
	}
	return v
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }
func listOf(v any) []any         { l, _ := v.([]any); return l }
func str(v any) string           { s, _ := v.(string); return s }
func num(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case string:
		f, _ := strconv.ParseFloat(t, 64)
		return f
	}
	return 0
}
