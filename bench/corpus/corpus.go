// Package corpus generates realistic, deterministic streams of SendPilot webhook events for benchmarks and
// tests: about 90% small outreach events spread over all documented event names (old and new), and about 10%
// lead extractor jobs and lead database searches carrying 10–200 leads, each lead with 0–8 experience entries,
// 0–4 education entries, 0–15 skills, Unicode names and long summaries. The same seed gives the same bytes.
//
// That is the default shape; other shapes (see Shape) change the proportions, so that a benchmark can check
// that a speed holds on other mixes of events than the default's.
package corpus

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"sendpilot-loader/extract/envelope"
)

// Shape names a mix of events.
type Shape string

// The shapes. The default shape's bytes for a seed never change (a test pins them), so figures measured on
// it stay comparable.
const (
	// ShapeDefault is the mix described in the package comment.
	ShapeDefault Shape = "default"
	// ShapeOldNames has only the five outreach events of the older SendPilot docs, under their older names
	// and with their older payloads (messagePreview, replyPreview, changedBy): message.sent,
	// message.received, connection.sent, connection.accepted and lead.status.changed. The older docs have no
	// lead extractor or lead database events, so this corpus has no leads: it weighs the per-event cost.
	ShapeOldNames Shape = "old-names"
	// ShapeWideLeads is the default mix with twice the leads in every lead extractor job and lead database
	// search (20–400), each lead of the same shape.
	ShapeWideLeads Shape = "wide-leads"
)

// Shapes lists every shape, the default first.
var Shapes = []Shape{ShapeDefault, ShapeOldNames, ShapeWideLeads}

// ParseShape returns the shape named s; "" is the default.
func ParseShape(s string) (Shape, error) {
	if s == "" {
		return ShapeDefault, nil
	}
	for _, sh := range Shapes {
		if string(sh) == s {
			return sh, nil
		}
	}
	return "", fmt.Errorf("parse corpus shape: unknown shape %q (want one of %v)", s, Shapes)
}

// Generator produces events one line at a time.
type Generator struct {
	rng      *rand.Rand
	n        int
	start    time.Time
	envelope bool
	shape    Shape
}

// New returns a generator of the default shape. With asEnvelope, each event is wrapped in a buffer envelope as
// the receiver writes it.
func New(seed uint64, asEnvelope bool) *Generator {
	return NewShape(seed, asEnvelope, ShapeDefault)
}

// NewShape is New for a given shape.
func NewShape(seed uint64, asEnvelope bool, shape Shape) *Generator {
	return &Generator{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:    time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC),
		envelope: asEnvelope,
		shape:    shape,
	}
}

// Write writes lines of g, each ending in a newline, to w until at least size bytes are written, and returns
// the rows they should produce and the bytes written.
func Write(w io.Writer, g *Generator, size int64) (Stats, int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var total Stats
	var written int64
	var line []byte
	for written < size {
		var st Stats
		line, st = g.Next(line[:0])
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return total, written, fmt.Errorf("write corpus: %w", err)
		}
		written += int64(len(line))
		total.add(st)
	}
	if err := bw.Flush(); err != nil {
		return total, written, fmt.Errorf("write corpus: %w", err)
	}
	return total, written, nil
}

// Stats counts what a generator produced, for checking a transform's output.
type Stats struct {
	Events, Leads, Experience, Education int64
}

func (s *Stats) add(o Stats) {
	s.Events += o.Events
	s.Leads += o.Leads
	s.Experience += o.Experience
	s.Education += o.Education
}

// Next appends the next event line (without a newline) to dst and reports the rows it should produce.
func (g *Generator) Next(dst []byte) ([]byte, Stats) {
	g.n++
	id := fmt.Sprintf("evt_%d_%08x", g.start.UnixMilli()+int64(g.n), g.rng.Uint32())
	ts := g.start.Add(time.Duration(g.n) * 1700 * time.Millisecond)
	var body []byte
	var st Stats
	if g.shape != ShapeOldNames && g.rng.IntN(10) == 0 {
		body, st = g.job(id, ts)
	} else {
		body = g.outreach(id, ts)
	}
	st.Events = 1
	if !g.envelope {
		return append(dst, body...), st
	}
	e := envelope.Envelope{
		V: envelope.Version, ReceivedAt: ts.Add(time.Duration(200+g.rng.IntN(3000)) * time.Millisecond),
		Signature: envelope.SigValid, RemoteAddr: "203.0.113.7:443",
		Headers: map[string]string{"content-type": "application/json", "user-agent": "SendPilot-Webhooks/1.0"},
		EventID: id, Payload: body,
	}
	return envelope.AppendLine(dst, &e), st
}

var outreachTypes = []string{
	"message.sent", "message.sent", "message.sent", "reply.received", "message.received",
	"connection_request.sent", "connection_request.sent", "connection.sent", "connection_request.accepted",
	"connection.accepted", "lead.updated", "lead.updated", "lead.status.changed", "lead.tag.updated",
	"campaign.started", "campaign.paused", "campaign.resumed", "campaign.finished",
}

// oldOutreachTypes are the outreach events of the older docs, in about the default's proportions.
var oldOutreachTypes = []string{
	"message.sent", "message.sent", "message.sent", "message.received",
	"connection.sent", "connection.sent", "connection.accepted", "lead.status.changed", "lead.status.changed",
}

var statuses = []string{"PENDING", "CONNECTION_SENT", "CONNECTION_ACCEPTED", "MESSAGE_SENT", "REPLY_RECEIVED", "OPPORTUNITY", "NOT_INTERESTED", "DONE"}

func (g *Generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *Generator) outreach(id string, ts time.Time) []byte {
	types := outreachTypes
	if g.shape == ShapeOldNames {
		types = oldOutreachTypes
	}
	typ := g.pick(types)
	lead := fmt.Sprintf("lead_%06d", g.rng.IntN(50000))
	camp := fmt.Sprintf("camp_%03d", g.rng.IntN(40))
	sender := fmt.Sprintf("sender_%02d", g.rng.IntN(12))
	url := "https://www.linkedin.com/in/" + strings.ToLower(g.pick(firstNames)) + "-" + strconv.Itoa(g.rng.IntN(99999))
	b := fmt.Appendf(nil, `{"eventId":%q,"eventType":%q,"timestamp":%q,"workspaceId":"ws_abc123xyz","data":{`, id, typ, ts.Format("2006-01-02T15:04:05.000Z"))
	common := fmt.Sprintf(`"leadId":%q,"campaignId":%q,"linkedinUrl":%q,"senderId":%q`, lead, camp, url, sender)
	switch typ {
	case "message.sent":
		if g.shape == ShapeOldNames || g.rng.IntN(4) == 0 { // the older docs send only a preview
			b = fmt.Appendf(b, `%s,"messagePreview":%q`, common, g.sentence(60, 100))
		} else {
			b = fmt.Appendf(b, `%s,"message":%q,"sequenceStep":%d`, common, g.sentence(80, 600), 1+g.rng.IntN(5))
		}
	case "reply.received":
		b = fmt.Appendf(b, `%s,"reply":%q`, common, g.sentence(10, 400))
	case "message.received":
		b = fmt.Appendf(b, `%s,"replyPreview":%q`, common, g.sentence(10, 100))
	case "connection_request.sent", "connection.sent":
		if g.rng.IntN(2) == 0 {
			b = fmt.Appendf(b, `%s,"note":%q`, common, g.sentence(40, 300))
		} else {
			b = append(b, common...)
		}
	case "connection_request.accepted", "connection.accepted":
		b = fmt.Appendf(b, `%s,"acceptedAt":%q`, common, ts.Add(-time.Duration(g.rng.IntN(3600))*time.Second).Format(time.RFC3339))
	case "lead.updated", "lead.status.changed":
		b = fmt.Appendf(b, `%s,"previousStatus":%q,"newStatus":%q`, common, g.pick(statuses), g.pick(statuses))
		if typ == "lead.status.changed" {
			b = fmt.Appendf(b, `,"changedBy":%q`, g.pick([]string{"api", "automation", "user"}))
		}
	case "lead.tag.updated":
		b = fmt.Appendf(b, `"leadId":%q,"campaignId":%q,"tags":[%q,%q]`, lead, camp, g.pick(skills), g.pick(skills))
	case "campaign.started":
		b = fmt.Appendf(b, `"campaignId":%q,"campaignName":%q,"totalLeads":%d,"startedAt":%q`, camp, g.campaignName(), 50+g.rng.IntN(500), ts.Format(time.RFC3339Nano))
	case "campaign.paused":
		b = fmt.Appendf(b, `"campaignId":%q,"campaignName":%q,"pausedAt":%q,"pausedBy":%q`, camp, g.campaignName(), ts.Format(time.RFC3339Nano), g.pick([]string{"api", "user", "system"}))
	case "campaign.resumed":
		b = fmt.Appendf(b, `"campaignId":%q,"campaignName":%q,"resumedAt":%q,"resumedBy":%q`, camp, g.campaignName(), ts.Format(time.RFC3339Nano), g.pick([]string{"api", "user"}))
	case "campaign.finished":
		b = fmt.Appendf(b, `"campaignId":%q,"campaignName":%q,"finishedAt":%q`, camp, g.campaignName(), ts.Format(time.RFC3339Nano))
	}
	return append(b, "}}"...)
}

func (g *Generator) job(id string, ts time.Time) ([]byte, Stats) {
	var st Stats
	n := 10 + g.rng.IntN(191)
	if g.shape == ShapeWideLeads {
		n *= 2
	}
	extractor := g.rng.IntN(3) != 0
	var b []byte
	started := ts.Add(-time.Duration(n) * 9 * time.Second)
	if extractor {
		b = fmt.Appendf(nil, `{"eventId":%q,"eventType":"lead_extractor.job.completed","timestamp":%q,"workspaceId":"ws_abc123xyz","data":{"campaign_id":"camp_x%05d","campaign_name":%q,"campaign_type":%q,"mode":%q,"search_urls":[%q],"total_leads_extracted":%d,"total_leads_enriched":%d,"requested_limit":%d,"started_at":%q,"completed_at":%q,"duration_ms":%d,"credits_used":{"extraction":%d,"enrichment":%d,"total":%d},"leads":[`,
			id, ts.Format("2006-01-02T15:04:05.000Z"), g.rng.IntN(99999), g.campaignName(), g.pick([]string{"SEARCH", "SALES_NAVIGATOR", "POST_ENGAGEMENT"}),
			g.pick([]string{"with_enrichment", "extraction_only"}), "https://www.linkedin.com/search/results/people/?keywords="+g.pick(titles),
			n, n*9/10, n+g.rng.IntN(50), started.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano), ts.Sub(started).Milliseconds(), n, n*9/10, n+n*9/10)
	} else {
		b = fmt.Appendf(nil, `{"eventId":%q,"eventType":"lead_database.search.completed","timestamp":%q,"workspaceId":"ws_abc123xyz","data":{"search_id":"search_%05d","search_name":%q,"total_leads_found":%d,"requested_limit":%d,"started_at":%q,"completed_at":%q,"duration_ms":%d,"filters":{"job_titles":[%q],"locations":[%q]},"leads":[`,
			id, ts.Format("2006-01-02T15:04:05.000Z"), g.rng.IntN(99999), g.campaignName(), n, n+g.rng.IntN(100), started.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano), ts.Sub(started).Milliseconds(), g.pick(titles), g.pick(countries))
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		var ex, ed int
		b, ex, ed = g.lead(b, extractor)
		st.Leads++
		st.Experience += int64(ex)
		st.Education += int64(ed)
	}
	path := "lead-database/searches/search_x"
	if extractor {
		path = "lead-extractor/campaigns/camp_x"
	}
	b = fmt.Appendf(b, `],"results_url":"/v1/%s/results"}}`, path)
	return b, st
}

func (g *Generator) lead(b []byte, extractor bool) ([]byte, int, int) {
	first, last := g.pick(firstNames), g.pick(lastNames)
	slug := strings.ToLower(strings.ReplaceAll(first+"-"+last, " ", "")) + strconv.Itoa(g.rng.IntN(9999))
	b = fmt.Appendf(b, `{"id":"lead_%08x","first_name":%q,"last_name":%q,"full_name":%q,"linkedin_url":"https://www.linkedin.com/in/%s","company":%q,"location":%q,"country":%q`,
		g.rng.Uint32(), first, last, first+" "+last, slug, g.pick(companies), g.pick(cities)+", "+g.pick(countries), g.pick(countries))
	if g.rng.IntN(3) > 0 {
		b = fmt.Appendf(b, `,"email":"%s@example.com","phone":"+1-555-%03d-%04d"`, slug, g.rng.IntN(1000), g.rng.IntN(10000))
	}
	if !extractor {
		b = fmt.Appendf(b, `,"job_title":%q,"industry":%q,"seniority":%q,"company_linkedin_url":"https://www.linkedin.com/company/%d","website":"https://example.com","employees":%q}`,
			g.pick(titles), g.pick(industries), g.pick([]string{"C-Level", "VP", "Director", "Manager", "Senior"}), g.rng.IntN(99999), g.pick([]string{"1-10", "11-50", "51-200", "201-500", "1001-5000"}))
		return b, 0, 0
	}
	b = fmt.Appendf(b, `,"linkedin_identifier":%q,"headline":%q,"summary":%q,"city":%q,"profile_picture_url":"https://media.licdn.com/dms/image/%08x/profile.jpg","job_position":%q,"connections":%d,"followers":%d`,
		slug, g.pick(titles)+" at "+g.pick(companies)+" | "+g.sentence(10, 60), g.sentence(200, 1400), g.pick(cities), g.rng.Uint32(), g.pick(titles), g.rng.IntN(30000), g.rng.IntN(90000))
	nex, ned, nsk := g.rng.IntN(9), g.rng.IntN(5), g.rng.IntN(16)
	b = append(b, `,"experience":[`...)
	for i := range nex {
		if i > 0 {
			b = append(b, ',')
		}
		y := 2024 - g.rng.IntN(25)
		b = fmt.Appendf(b, `{"title":%q,"company":%q,"duration":"%d - %s","location":%q,"description":%q}`, g.pick(titles), g.pick(companies), y, g.pick([]string{"Present", strconv.Itoa(y + 1 + g.rng.IntN(5))}), g.pick(cities), g.sentence(20, 300))
	}
	b = append(b, `],"education":[`...)
	for i := range ned {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"school":%q,"degree":%q,"field_of_study":%q}`, g.pick(schools), g.pick([]string{"BSc", "MSc", "MBA", "PhD", "BA"}), g.pick(fields))
	}
	b = append(b, `],"skills":[`...)
	for i := range nsk {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, g.pick(skills))
	}
	return append(b, "]}"...), nex, ned
}

func (g *Generator) campaignName() string {
	return g.pick([]string{"Q1 Tech Founders Outreach", "Série A 🇫🇷 founders", "DACH Geschäftsführer", "東京 SaaS leaders", "Nordic CTOs"})
}

func (g *Generator) sentence(minLen, maxLen int) string {
	n := minLen + g.rng.IntN(maxLen-minLen+1)
	var sb strings.Builder
	for sb.Len() < n {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(g.pick(words))
	}
	return sb.String()
}

var (
	firstNames = []string{"John", "Zoë", "José", "Łukasz", "Aiko", "Олег", "Maëlle", "Søren", "Priya", "Chloé", "Mohammed", "李", "Björn", "Ana"}
	lastNames  = []string{"Doe", "Müller", "García", "Nowak", "山田", "Иванов", "Østergaard", "Patel", "O'Brien", "Dubois", "Al-Farsi", "Nguyễn"}
	companies  = []string{"TechCorp Inc", "Acme GmbH", "Initech", "Globex", "Société Générale de Logiciels", "株式会社テック", "Umbrella Ltd", "Hooli"}
	titles     = []string{"CEO", "CTO", "VP Engineering", "Head of Growth", "Founder", "Staff Engineer", "Directeur Commercial", "Product Manager"}
	cities     = []string{"San Francisco", "Berlin", "Paris", "Tokyo", "São Paulo", "Kraków", "London", "Zürich"}
	countries  = []string{"United States", "Germany", "France", "Japan", "Brazil", "Poland", "United Kingdom", "Switzerland"}
	industries = []string{"Technology", "Financial Services", "Healthcare", "Retail", "Manufacturing"}
	schools    = []string{"Stanford University", "ETH Zürich", "École Polytechnique", "東京大学", "MIT", "Uniwersytet Warszawski"}
	fields     = []string{"Computer Science", "Economics", "Physics", "Business Administration", "Design"}
	skills     = []string{"Leadership", "Strategy", "AI/ML", "Go", "Sales", "Négociation", "Public Speaking", "SaaS", "Kubernetes", "データ分析"}
	words      = []string{"growth", "building", "the", "future", "of", "AI", "scalable", "teams", "passionate", "about", "customer", "success", "with", "15+", "years", "in", "B2B", "SaaS", "“quoted”", "naïve", "café", "résumé", "🚀", "and", "\"escaped\"", "line\nbreak", "tab\there"}
)

// StartAt makes the generator's events begin at t instead of the corpus's fixed start (2024-02-01), one every
// 1.7 s as before; it returns g. A benchmark uses it for events newer than a warehouse it built from the
// corpus, as new deliveries are.
func (g *Generator) StartAt(t time.Time) *Generator {
	g.start = t
	return g
}
