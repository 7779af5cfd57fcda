package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cairnstore/cairn"
	"github.com/google/uuid"
)

// The ledger is the demo's side-effect service: what a payment provider
// or a mailer is to a real engine. Every step of a run has an effect (say,
// a charge of the step's value), and the workers ask the ledger to perform
// it with the idempotency key cairn.Lease.Key(step), "run/step/epoch".
// The ledger keeps, per run, the effects it performed and the highest
// epoch it has seen, and:
//   - performs each step of a run once: asked again (by a worker that
//     resumed the run after a crash that came between the effect and the
//     checkpoint), it answers with the first receipt and performs nothing;
//   - refuses an epoch lower than one it has seen for the run
//     (errStaleEpoch): a worker whose lease was taken over cannot act
//     after the new owner did.
//
// The demo process runs it as an HTTP service on the loopback interface,
// apart from every worker process (so the killed worker's effects stay
// recorded), and the final check reads it there. It is in memory: it
// lives as long as the demo, like the external service it stands for.

// errStaleEpoch is the ledger's refusal of a lease it knows was taken over.
var errStaleEpoch = errors.New("the ledger has seen a newer epoch of this run")

// effects performs the steps' side effects: the ledger itself (ledger),
// or a worker's client of it (ledgerClient).
type effects interface {
	// perform performs step of l's run, of value, for worker by, once: it
	// returns the receipt, or errStaleEpoch when the ledger has seen a
	// newer epoch of the run.
	perform(ctx context.Context, l *cairn.Lease, by string, step int, value int64) (receipt, error)
}

// receipt is the ledger's answer to a request.
type receipt struct {
	Key    string `json:"key"`    // the key the effect was performed under
	Replay bool   `json:"replay"` // performed before, under Key; nothing was done now
}

// ledgerDoc is what the ledger knows of one run.
type ledgerDoc struct {
	Epoch uint64   // the highest epoch seen
	Steps []effect // the effects performed, in order
}

// effect is one step's effect as the ledger performed it.
type effect struct {
	Step  int
	Key   string // the idempotency key it was performed under: the receipt
	Epoch uint64
	By    string // the worker that asked
	Value int64
}

// ledger is the service. It is safe for concurrent use.
type ledger struct {
	mu struct {
		sync.Mutex
		runs map[uuid.UUID]*ledgerDoc
	}
}

var _ effects = (*ledger)(nil)

func newLedger() *ledger {
	lg := &ledger{}
	lg.mu.runs = map[uuid.UUID]*ledgerDoc{}
	return lg
}

func (lg *ledger) perform(_ context.Context, l *cairn.Lease, by string, step int, value int64) (receipt, error) {
	if step < 1 || step > len(demoSteps) {
		return receipt{}, fmt.Errorf("no step %d in the demo", step)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	d := lg.mu.runs[l.RunID]
	if d == nil {
		d = &ledgerDoc{}
		lg.mu.runs[l.RunID] = d
	}
	if l.Epoch < d.Epoch {
		return receipt{}, fmt.Errorf("%w: run %v step %d under epoch %d, epoch %d seen", errStaleEpoch, l.RunID, step, l.Epoch, d.Epoch)
	}
	d.Epoch = l.Epoch
	if i := slices.IndexFunc(d.Steps, func(e effect) bool { return e.Step == step }); i >= 0 {
		return receipt{Key: d.Steps[i].Key, Replay: true}, nil
	}
	key := l.Key(demoSteps[step-1])
	d.Steps = append(d.Steps, effect{Step: step, Key: key, Epoch: l.Epoch, By: by, Value: value})
	return receipt{Key: key}, nil
}

// all returns a copy of what the ledger knows, by run.
func (lg *ledger) all() map[uuid.UUID]*ledgerDoc {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	out := make(map[uuid.UUID]*ledgerDoc, len(lg.mu.runs))
	for run, d := range lg.mu.runs {
		out[run] = &ledgerDoc{Epoch: d.Epoch, Steps: slices.Clone(d.Steps)}
	}
	return out
}

// ledgerRequest is the body of a request to the service.
type ledgerRequest struct {
	Run   uuid.UUID `json:"run"`
	Step  int       `json:"step"`
	Epoch uint64    `json:"epoch"`
	By    string    `json:"by"`
	Value int64     `json:"value"`
}

// The environment variables that give a worker process the ledger: the
// service's URL and the token it requires.
const (
	envLedgerURL   = "CAIRN_DEMO_LEDGER_URL"
	envLedgerToken = "CAIRN_DEMO_LEDGER_TOKEN"
)

// serve runs the service on a loopback port until ctx ends. It returns
// the environment (envLedgerURL, envLedgerToken) that a worker process
// needs to reach it. Requests without the token are refused: another
// local user must not be able to perform effects.
func (lg *ledger) serve(ctx context.Context) ([]string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("the demo's ledger: %w", err)
	}
	token := make([]byte, 16)
	rand.Read(token)
	tok := hex.EncodeToString(token)
	srv := &http.Server{Handler: lg.handler(tok), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return []string{envLedgerURL + "=http://" + ln.Addr().String() + "/perform", envLedgerToken + "=" + tok}, nil
}

// handler serves POST /perform: 200 with a receipt, 409 for a stale
// epoch, 400 for a bad request, 401 without the token.
func (lg *ledger) handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /perform", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "no or wrong token", http.StatusUnauthorized)
			return
		}
		var req ledgerRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc, err := lg.perform(r.Context(), &cairn.Lease{RunID: req.Run, Epoch: req.Epoch}, req.By, req.Step, req.Value)
		switch {
		case errors.Is(err, errStaleEpoch):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			json.NewEncoder(w).Encode(rc)
		}
	})
	return mux
}

// ledgerClient is a worker's client of the service.
type ledgerClient struct {
	url, token string
	c          *http.Client
}

var _ effects = (*ledgerClient)(nil)

// ledgerFromEnv returns the client of the service that getenv names.
func ledgerFromEnv(getenv func(string) string) (*ledgerClient, error) {
	u, tok := getenv(envLedgerURL), getenv(envLedgerToken)
	if u == "" || tok == "" {
		return nil, fmt.Errorf("a worker process of the demo needs %s and %s: it is started by cairn demo", envLedgerURL, envLedgerToken)
	}
	return &ledgerClient{url: u, token: tok, c: &http.Client{Timeout: 10 * time.Second}}, nil
}

// ledgerAttempts bounds the requests of one perform that fail in transit.
// Repeating a request is safe: the ledger performs a step once.
const ledgerAttempts = 3

func (lc *ledgerClient) perform(ctx context.Context, l *cairn.Lease, by string, step int, value int64) (receipt, error) {
	body, err := json.Marshal(ledgerRequest{Run: l.RunID, Step: step, Epoch: l.Epoch, By: by, Value: value})
	if err != nil {
		return receipt{}, err
	}
	for attempt := 1; ; attempt++ {
		rc, err := lc.post(ctx, body)
		var te transportError
		if !errors.As(err, &te) || attempt == ledgerAttempts || ctx.Err() != nil {
			return rc, err
		}
	}
}

// transportError is a request that got no answer: it may or may not have
// been performed, and may be repeated.
type transportError struct{ error }

func (lc *ledgerClient) post(ctx context.Context, body []byte) (receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lc.url, bytes.NewReader(body))
	if err != nil {
		return receipt{}, err
	}
	req.Header.Set("Authorization", "Bearer "+lc.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := lc.c.Do(req)
	if err != nil {
		return receipt{}, transportError{fmt.Errorf("the demo's ledger: %w", err)}
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case err != nil:
		return receipt{}, transportError{fmt.Errorf("the demo's ledger: %w", err)}
	case resp.StatusCode == http.StatusConflict:
		return receipt{}, fmt.Errorf("%w (%s)", errStaleEpoch, bytes.TrimSpace(msg))
	case resp.StatusCode != http.StatusOK:
		return receipt{}, fmt.Errorf("the demo's ledger: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var rc receipt
	if err := json.Unmarshal(msg, &rc); err != nil {
		return receipt{}, fmt.Errorf("the demo's ledger answered %q: %w", msg, err)
	}
	return rc, nil
}
