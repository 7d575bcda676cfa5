package bench

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/workload"
)

// Payload is one pre-generated segment payload (gzip-compressed rrweb JSON,
// as browser SDKs upload it).
type Payload struct {
	Gzip []byte
	// B64 is Gzip in standard base64, as it travels in a push request.
	B64 string
	// Raw is the size of the JSON inside.
	Raw int
}

// Corpus is a pool of payloads whose compressed sizes follow a size
// distribution. Generating and compressing a distinct payload for each of
// tens of thousands of segments would take longer than the measurement, so
// segments draw their payloads from the pool. The pool is stratified (its
// i-th payload has the size of the distribution's (i+½)/n quantile), so
// even a small pool has the distribution's median, mean and tail. Nothing
// on the measured paths caches anything about a payload, so repeating one
// costs the same as a new one.
type Corpus struct {
	Sizes workload.SizeDist
	// First start a replay (meta event and full snapshot); Rest are the
	// incremental segments that follow.
	First, Rest []Payload
}

// NewCorpus generates n incremental payloads and n/8 (at least 4) first
// segments, deterministically from seed.
func NewCorpus(sizes workload.SizeDist, n int, seed uint64) *Corpus {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	c := &Corpus{Sizes: sizes}
	c.Rest = stratified(rng, sizes, n, 1)
	c.First = stratified(rng, sizes, max(n/8, 4), 0)
	return c
}

func stratified(rng *rand.Rand, sizes workload.SizeDist, n, segID int) []Payload {
	// Sample many sizes and take the quantiles.
	const draws = 1 << 16
	all := make([]int, draws)
	for i := range all {
		all[i] = sizes.Sample(rng)
	}
	slices.Sort(all)
	out := make([]Payload, n)
	for i := range out {
		target := all[int((float64(i)+0.5)/float64(n)*draws)]
		gz, raw := workload.CompressedSegment(rng, segID, 1_700_000_000_000, target)
		out[i] = Payload{Gzip: gz, B64: base64.StdEncoding.EncodeToString(gz), Raw: len(raw)}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// MeanCompressed returns the mean compressed size of the pool's payloads,
// weighted as a stream draws them.
func (c *Corpus) MeanCompressed() float64 {
	var sum float64
	for _, p := range c.Rest {
		sum += float64(len(p.Gzip))
	}
	return sum / float64(len(c.Rest))
}

// Stream produces push requests for many replays at once: Active replays
// are open at any time, each segment goes to a random one of them, and a
// replay that has sent all its segments (its length drawn from Lengths) is
// replaced by a new one. So replays of 1 to 2,000 segments interleave, as
// they do on a real subscription.
type Stream struct {
	corpus   *Corpus
	lengths  workload.LengthDist
	projects int
	rng      *rand.Rand
	active   []*streamReplay
	msgs     int64
	form     PushForm
}

// PushForm is the form of the requests a stream makes: what Pack gets.
type PushForm string

const (
	// FormDirect is Pack's direct form (package direct), which Ingest
	// posts for every segment it delivers directly: Pack's main path in
	// production (PACK_URL).
	FormDirect PushForm = "direct"
	// FormPubSub is the Pub/Sub push envelope (JSON, payload in base64):
	// what Ingest spills arrives so, and every segment without PACK_URL.
	FormPubSub PushForm = "pubsub"
)

// ParsePushForm reads a PushForm by its name.
func ParsePushForm(s string) (PushForm, error) {
	switch f := PushForm(s); f {
	case FormDirect, FormPubSub:
		return f, nil
	}
	return "", fmt.Errorf("push form %q: want %s or %s", s, FormDirect, FormPubSub)
}

// Method is the HTTP method of a request in form f: PUT for the direct
// form, as Ingest sends it, POST for a push.
func (f PushForm) Method() string {
	if f == FormDirect {
		return http.MethodPut
	}
	return http.MethodPost
}

// ContentType is the Content-Type of a request in form f.
func (f PushForm) ContentType() string {
	if f == FormDirect {
		return direct.ContentType
	}
	return "application/json"
}

type streamReplay struct {
	project int64
	id      string
	next    int
	length  int
}

// NewStream returns a stream over corpus; seed makes it repeatable and
// distinct seeds give distinct replay ids.
func NewStream(corpus *Corpus, lengths workload.LengthDist, active, projects int, seed uint64) *Stream {
	s := &Stream{corpus: corpus, lengths: lengths, projects: projects, rng: rand.New(rand.NewPCG(seed, seed^0xa11ce))}
	s.active = make([]*streamReplay, active)
	for i := range s.active {
		s.active[i] = s.newReplay()
	}
	return s
}

func (s *Stream) newReplay() *streamReplay {
	var id uuid.UUID
	for i := range id {
		id[i] = byte(s.rng.Uint32())
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return &streamReplay{project: 1 + int64(s.rng.IntN(s.projects)), id: id.String(), length: s.lengths.Sample(s.rng)}
}

// WithForm makes s produce requests in form f (FormPubSub until set) and
// returns s.
func (s *Stream) WithForm(f PushForm) *Stream {
	s.form = f
	return s
}

// Message is one push request body and the size of the segment it carries.
type Message struct {
	ID   string
	Body []byte
	// Method and ContentType are those of Body's form.
	Method, ContentType string
	// Bytes is the compressed payload size.
	Bytes int
}

// Next returns the next push request.
func (s *Stream) Next() Message {
	i := s.rng.IntN(len(s.active))
	r := s.active[i]
	var p *Payload
	if r.next == 0 {
		p = &s.corpus.First[s.rng.IntN(len(s.corpus.First))]
	} else {
		p = &s.corpus.Rest[s.rng.IntN(len(s.corpus.Rest))]
	}
	seg := r.next
	r.next++
	if r.next >= r.length {
		s.active[i] = s.newReplay()
	}
	s.msgs++
	id := strconv.FormatInt(s.msgs, 10)
	if s.form == FormDirect {
		return Message{ID: id, Body: directBody(id, r.project, r.id, seg, p.Gzip), Method: FormDirect.Method(), ContentType: direct.ContentType, Bytes: len(p.Gzip)}
	}
	return Message{ID: id, Body: pushBody(id, r.project, r.id, seg, p.B64), Method: FormPubSub.Method(), ContentType: FormPubSub.ContentType(), Bytes: len(p.Gzip)}
}

// directBody builds a request body in Pack's direct form, as Ingest's
// direct delivery sends it (the block, then the payload).
func directBody(msgID string, project int64, replay string, seg int, payload []byte) []byte {
	b, err := direct.AppendBlock(make([]byte, 0, len(payload)+128), "bench-"+msgID, map[string]string{
		"project_id": strconv.FormatInt(project, 10), "replay_id": replay, "segment_id": strconv.Itoa(seg),
	})
	if err != nil {
		panic(err) // the attributes are far within the block's limits
	}
	return append(b, payload...)
}

// pushBody builds a Pub/Sub push request body (the data of a
// messagePublished CloudEvent) without re-encoding the payload.
func pushBody(msgID string, project int64, replay string, seg int, b64 string) []byte {
	b := make([]byte, 0, len(b64)+256)
	b = append(b, `{"subscription":"projects/bench/subscriptions/segments","message":{"messageId":"`...)
	b = append(b, msgID...)
	b = append(b, `","attributes":{"project_id":"`...)
	b = strconv.AppendInt(b, project, 10)
	b = append(b, `","replay_id":"`...)
	b = append(b, replay...)
	b = append(b, `","segment_id":"`...)
	b = strconv.AppendInt(b, int64(seg), 10)
	b = append(b, `"},"data":"`...)
	b = append(b, b64...)
	b = append(b, `"}}`...)
	return b
}
