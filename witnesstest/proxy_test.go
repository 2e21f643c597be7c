package witnesstest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/proofs"
)

// witnessingProxy stands in front of a warrant server and makes it a
// witnessed log, as far as its clients can tell: every checkpoint it
// passes on (GET /checkpoint, the checkpoint fields of Connect answers,
// the notes inside chain bundles) is first sent to a witness with a C2SP
// tlog-witness add-checkpoint request (to each of its witnesses), and
// passed on with the witnesses' cosignature lines appended. Nothing else
// changes; in particular the log's own signature and text are the
// server's.
type witnessingProxy struct {
	t           *testing.T
	logKey      note.Verifier
	rpc         warrantv1connect.LedgerServiceClient // the real server, for consistency proofs
	witnessURLs []string

	mu       sync.Mutex
	size     map[string]uint64 // each witness's latest cosigned size
	cosigned map[string][]byte // checkpoint text -> cosignature lines
	streamed int               // stream messages rewritten
}

func newWitnessingProxy(t *testing.T, server string, logKey note.Verifier, witnessURLs ...string) (*witnessingProxy, http.Handler) {
	p := &witnessingProxy{
		t: t, logKey: logKey, witnessURLs: witnessURLs, size: map[string]uint64{},
		rpc:      warrantv1connect.NewLedgerServiceClient(http.DefaultClient, server),
		cosigned: map[string][]byte{},
	}
	target, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			// Uncompressed answers, so that they can be rewritten. The
			// checkpoint feed is a stream: not rewritten, nor used here.
			r.Out.Header.Del("Accept-Encoding")
			r.Out.Header.Del("Connect-Accept-Encoding")
		},
		ModifyResponse: p.modify,
	}
	return p, rp
}

// streamedMessages is how many stream messages the proxy rewrote.
func (p *witnessingProxy) streamedMessages() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streamed
}

func (p *witnessingProxy) modify(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	path := resp.Request.URL.Path
	ct := resp.Header.Get("Content-Type")
	var rewrite func([]byte) ([]byte, error)
	switch {
	case path == "/checkpoint":
		rewrite = p.cosign
	case strings.HasPrefix(path, "/"+warrantv1connect.LedgerServiceName+"/") && ct == "application/proto":
		rewrite = func(body []byte) ([]byte, error) { return p.rewriteAnswer(path, body) }
	case strings.HasPrefix(path, "/"+warrantv1connect.LedgerServiceName+"/") && ct == "application/connect+proto":
		// A stream (the checkpoint feed): rewrite it message by message, as
		// it comes; ContentLength -1 makes the proxy flush each write.
		pr, pw := io.Pipe()
		go func(body io.ReadCloser) {
			defer body.Close()
			pw.CloseWithError(p.rewriteStream(path, body, pw))
		}(resp.Body)
		resp.Body = pr
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return nil
	default:
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if body, err = rewrite(body); err != nil {
		p.t.Errorf("witnessing proxy, %s: %v", path, err)
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// rewriteAnswer cosigns the checkpoints of a Connect answer (proto codec).
func (p *witnessingProxy) rewriteAnswer(procedure string, body []byte) ([]byte, error) {
	service, method, _ := strings.Cut(strings.TrimPrefix(procedure, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, err
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("no method %s", procedure)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(body, m); err != nil {
		return nil, err
	}
	if err := p.rewriteMessage(m.ProtoReflect()); err != nil {
		return nil, err
	}
	return proto.Marshal(m)
}

// rewriteStream copies a Connect stream (envelopes of a flags byte and a
// 4-byte length), rewriting each message; the end-of-stream envelope
// (flag 2) is copied as is.
func (p *witnessingProxy) rewriteStream(procedure string, r io.Reader, w io.Writer) error {
	for {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return err
		}
		if head[0] == 0 {
			var err error
			if msg, err = p.rewriteAnswer(procedure, msg); err != nil {
				p.t.Errorf("witnessing proxy, %s: %v", procedure, err)
				return err
			}
			binary.BigEndian.PutUint32(head[1:], uint32(len(msg)))
			p.mu.Lock()
			p.streamed++
			p.mu.Unlock()
		}
		if _, err := w.Write(append(head[:], msg...)); err != nil {
			return err
		}
	}
}

// rewriteMessage cosigns every bytes field named checkpoint, and the
// checkpoints inside every field named bundle, in m and what it holds.
func (p *witnessingProxy) rewriteMessage(m protoreflect.Message) error {
	type change struct {
		fd protoreflect.FieldDescriptor
		v  []byte
	}
	var changes []change
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = p.rewriteMessage(v.List().Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			err = p.rewriteMessage(v.Message())
		case fd.Kind() == protoreflect.BytesKind && fd.Name() == "checkpoint":
			var b []byte
			b, err = p.cosign(v.Bytes())
			changes = append(changes, change{fd, b})
		case fd.Kind() == protoreflect.BytesKind && fd.Name() == "bundle":
			var b []byte
			b, err = p.cosignBundle(v.Bytes())
			changes = append(changes, change{fd, b})
		}
		return err == nil
	})
	for _, c := range changes {
		m.Set(c.fd, protoreflect.ValueOfBytes(c.v))
	}
	return err
}

// cosignBundle cosigns every checkpoint of a chain bundle.
func (p *witnessingProxy) cosignBundle(raw []byte) ([]byte, error) {
	b, err := proofs.ParseBundle(raw)
	if err != nil {
		return nil, err
	}
	for i, tp := range b.Proofs {
		parsed, err := proofs.ParseTLogProof([]byte(tp))
		if err != nil {
			return nil, err
		}
		if parsed.Checkpoint, err = p.cosign(parsed.Checkpoint); err != nil {
			return nil, err
		}
		b.Proofs[i] = string(parsed.Marshal())
	}
	for i, c := range b.Consistency {
		from, err := p.cosign([]byte(c.From))
		if err != nil {
			return nil, err
		}
		to, err := p.cosign([]byte(c.To))
		if err != nil {
			return nil, err
		}
		b.Consistency[i].From, b.Consistency[i].To = string(from), string(to)
	}
	return b.Marshal(), nil
}

// cosign returns the log-signed checkpoint with the witnesses' cosignature
// lines appended. A checkpoint is sent to the witnesses once; one older
// than a witness's latest cannot be (tlog-witness only moves forward), and
// is passed on without that witness's cosignature.
func (p *witnessingProxy) cosign(signed []byte) ([]byte, error) {
	cp, err := proofs.OpenCheckpoint(signed, p.logKey)
	if err != nil {
		return nil, fmt.Errorf("the server's checkpoint: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	text := string(proofs.CheckpointBody(cp.Origin, cp.Size, cp.Root))
	if sigs, ok := p.cosigned[text]; ok {
		return append(bytes.Clone(signed), sigs...), nil
	}
	var sigs []byte
	for _, u := range p.witnessURLs {
		if cp.Size < p.size[u] {
			p.t.Logf("witnessing proxy: checkpoint of size %d is older than %s's %d; passed on without its cosignature", cp.Size, u, p.size[u])
			continue
		}
		s, err := p.addCheckpoint(u, signed, cp.Size)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, s...)
		p.size[u] = cp.Size
	}
	p.cosigned[text] = sigs
	return append(bytes.Clone(signed), sigs...), nil
}

// addCheckpoint sends a C2SP tlog-witness add-checkpoint request: the old
// size the witness holds, a consistency proof from it, and the checkpoint.
// A 409 with the witness's size (text/x.tlog.size) is answered once by
// resending from that size.
func (p *witnessingProxy) addCheckpoint(witnessURL string, signed []byte, size uint64) ([]byte, error) {
	old := p.size[witnessURL]
	for attempt := 0; ; attempt++ {
		var proof [][]byte
		if old > 0 && old < size {
			resp, err := p.rpc.GetConsistencyProof(context.Background(), connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: old, ToSize: size}))
			if err != nil {
				return nil, fmt.Errorf("consistency proof %d->%d: %w", old, size, err)
			}
			proof = resp.Msg.GetHashes()
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		for _, h := range proof {
			fmt.Fprintf(&body, "%s\n", base64.StdEncoding.EncodeToString(h))
		}
		body.WriteString("\n")
		body.Write(signed)
		resp, err := http.Post(witnessURL+"/add-checkpoint", "", &body)
		if err != nil {
			return nil, err
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return answer, nil
		case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == "text/x.tlog.size" && attempt == 0:
			if old, err = strconv.ParseUint(strings.TrimSpace(string(answer)), 10, 64); err != nil {
				return nil, fmt.Errorf("409 with size %q", answer)
			}
		default:
			return nil, fmt.Errorf("witness answered add-checkpoint (old %d, size %d) with %s: %q", old, size, resp.Status, answer)
		}
	}
}
