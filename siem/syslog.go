package siem

import (
	"strconv"
	"strings"
	"time"
)

// Syslog message constants (RFC 5424).
const (
	// rfc5424Facility is authpriv (10): security/authorization messages,
	// the facility syslog daemons conventionally route to a protected file,
	// which suits records that name identities and policies.
	rfc5424Facility = 10
	// rfc5424SDID is warrant's structured-data element. 32473 is the
	// private enterprise number RFC 5612 reserves for documentation:
	// deployments that need a registered one can rewrite the SD-ID.
	rfc5424SDID = "warrant@32473"
	// rfc5424TimeLayout is RFC 3339 with microseconds, the finest
	// TIME-SECFRAC RFC 5424 allows; times are UTC.
	rfc5424TimeLayout = "2006-01-02T15:04:05.000000Z"
	rfc5424Nil        = "-"
)

// Syslog returns the RFC 5424 rendering, for a syslog collector:
//
//	<PRI>1 TIMESTAMP HOSTNAME warrant - MSGID [warrant@32473 origin="..." index="..." ...] MSG
//
// PRI is facility authpriv with the severity of MAPPING.md; TIMESTAMP is the
// entry's log time (an alert's time); MSGID is the signature id; MSG a short
// English sentence, without BOM (it is ASCII but for follower-supplied
// alert text). hostname names the machine sending the records; empty means
// NILVALUE. Records carry no trailing newline: framing (octet counting or
// LF) is the sink's job.
func Syslog(hostname string) Format {
	return rfc5424Format{hostname: rfc5424Hostname(hostname)}
}

type rfc5424Format struct{ hostname string }

// rfc5424Hostname makes a HOSTNAME field: 1 to 255 printable US-ASCII
// characters (anything else becomes '_'), or NILVALUE.
func rfc5424Hostname(h string) string {
	if h == "" {
		return rfc5424Nil
	}
	b := []byte(h)
	if len(b) > 255 {
		b = b[:255]
	}
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

// rfc5424Severity maps a level onto a syslog severity: informational (6),
// notice (5), warning (4), critical (2).
func rfc5424Severity(l severityLevel) int {
	switch l {
	case levelInfo:
		return 6
	case levelMedium:
		return 5
	case levelHigh:
		return 4
	default:
		return 2
	}
}

// rfc5424ValueEscaper escapes PARAM-VALUEs as RFC 5424 requires ('"', '\'
// and ']' get a backslash) and writes line breaks as \n and \r, so that a
// record is one line. A reader that knows only RFC 5424 shows a line break
// as a backslash and a letter; a single left-to-right pass that undoes \\,
// \", \], \n and \r restores the value exactly, since a real backslash is
// always doubled.
var rfc5424ValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`, "\r", `\r`, "\n", `\n`)

// rfc5424MsgCleaner keeps MSG on one line.
var rfc5424MsgCleaner = strings.NewReplacer("\r", " ", "\n", " ")

// rfc5424Record builds a record.
type rfc5424Record struct{ b strings.Builder }

func (f rfc5424Format) start(c entryClass, t time.Time) *rfc5424Record {
	r := &rfc5424Record{}
	r.b.WriteByte('<')
	r.b.WriteString(strconv.Itoa(rfc5424Facility*8 + rfc5424Severity(c.level)))
	r.b.WriteString(">1 ")
	r.b.WriteString(t.UTC().Format(rfc5424TimeLayout))
	r.b.WriteByte(' ')
	r.b.WriteString(f.hostname)
	r.b.WriteString(" " + Product + " " + rfc5424Nil + " ")
	r.b.WriteString(c.sig)
	r.b.WriteString(" [" + rfc5424SDID)
	return r
}

// param appends name="value" unless value is empty.
func (r *rfc5424Record) param(name, value string) {
	if value == "" {
		return
	}
	r.b.WriteByte(' ')
	r.b.WriteString(name)
	r.b.WriteString(`="`)
	r.b.WriteString(rfc5424ValueEscaper.Replace(value))
	r.b.WriteByte('"')
}

func (r *rfc5424Record) finish(msg string) []byte {
	r.b.WriteString("] ")
	r.b.WriteString(rfc5424MsgCleaner.Replace(msg))
	return []byte(r.b.String())
}

func (f rfc5424Format) Event(e *Event) ([]byte, error) {
	v, err := describeEvent(e)
	if err != nil {
		return nil, err
	}
	r := f.start(v.c, e.Leaf.Time)
	r.param("origin", e.Origin)
	r.param("index", strconv.FormatUint(e.Index, 10))
	r.param("checkpoint_size", strconv.FormatUint(e.CheckpointSize, 10))
	r.param("id", e.ID())
	r.param("kind", v.kind)
	r.param("entry_id", v.entryID)
	r.param("decision", v.outcome)
	r.param("reasons", strings.Join(v.reasons, ","))
	r.param("actor", v.actor.id)
	r.param("subject", v.subject.id)
	r.param("delegation", v.delegation)
	r.param("parent", v.parent)
	if v.depth > 0 {
		r.param("depth", strconv.Itoa(v.depth))
	}
	r.param("task", v.task)
	r.param("policy", v.policyDigest)
	r.param("recorded_policy", v.newPolicyDigest)
	r.param("key_id", v.keyID)
	r.param("tier", v.tier)
	detail := v.purpose
	if detail == "" {
		detail = v.revocationReason
	}
	r.param("detail", detail)
	return r.finish(v.message), nil
}

func (f rfc5424Format) Alert(a *Alert) ([]byte, error) {
	r := f.start(alertClass(a), a.Time)
	r.param("origin", a.Origin)
	r.param("id", alertID(a))
	r.param("kind", "alert")
	r.param("reason", a.Reason)
	r.param("witness", a.Witness)
	r.param("witness_url", a.WitnessURL)
	r.param("witness_error", a.WitnessErrorKind)
	r.param("detail", a.WitnessError)
	r.param("evidence", evidenceDigest(a))
	return r.finish(alertMessage(a)), nil
}
