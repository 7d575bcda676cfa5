package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
)

// The crash scenarios run Pack as a child process (`replayvault-dev
// function`, FUNCTION_TARGET=Pack, as Cloud Run runs it) behind a push
// subscription of the Pub/Sub emulator, and kill it with SIGKILL at an
// exact point of a flush, found by a fault point: the upload gate in front
// of storage or the protocol watcher in front of PostgreSQL. The child is
// restarted and the emulator redelivers whatever was not acked.

// Child Pack's timeouts: one flush takes at most GCS_TIMEOUT + DB_TIMEOUT,
// which must stay under the sweeper's grace.
const (
	childGCSTimeout = 1500 * time.Millisecond
	childDBTimeout  = 1500 * time.Millisecond
	// ackDeadline is the push subscription's: longer than a flush.
	ackDeadline = 10 * time.Second
)

// killBeforeUpload: Pack dies as its upload reaches storage; nothing was
// written anywhere.
func killBeforeUpload(ctx context.Context, e *env, o Options, rep *Report) error {
	return crash(ctx, e, o, rep, func(c *crashRun, fire func() bool) {
		e.gate.set(fire, nil)
	}, func(c *crashRun) {
		e.gate.set(nil, nil)
	})
}

// killAfterUpload: storage has the object but Pack dies before it hears
// so, before any row exists: the object is an orphan that the sweep must
// delete after the grace, and the redelivered segments land in another.
func killAfterUpload(ctx context.Context, e *env, o Options, rep *Report) error {
	err := crash(ctx, e, o, rep, func(c *crashRun, fire func() bool) {
		e.gate.set(nil, fire)
	}, func(c *crashRun) {
		e.gate.set(nil, nil)
	})
	if err == nil && rep.Kills > 0 {
		// Checked once the sweep has had its final run (finish).
		e.minOrphans = rep.Kills
	}
	return err
}

// killAfterCommit: the flush transaction committed but Pack dies before it
// hears so, so nothing is acked: every redelivery must come out as a
// duplicate of the committed rows.
func killAfterCommit(ctx context.Context, e *env, o Options, rep *Report) error {
	err := crash(ctx, e, o, rep, func(c *crashRun, fire func() bool) {
		c.watch.hooks(nil, fire)
	}, func(c *crashRun) {
		c.watch.hooks(nil, nil)
	})
	if err == nil && rep.Kills > 0 && rep.Figures["redelivered_duplicates"] == 0 {
		return errors.New("no redelivery came out as a duplicate: the kills missed the window between commit and ack")
	}
	return err
}

// postgresRestart: PostgreSQL is stopped as by a crash (immediate
// shutdown) right after a flush's COMMIT is sent, and started again:
// the commit may or may not have happened, Pack's connections are all cut,
// and it must recover on its own.
func postgresRestart(ctx context.Context, e *env, o Options, rep *Report) error {
	c := &crashRun{}
	return crashWith(ctx, e, o, rep, c, func(fire func() bool) {
		c.watch.hooks(fire, nil)
	}, func() {
		c.watch.hooks(nil, nil)
	}, func() error {
		return e.sd.pg.Restart(ctx, true)
	})
}

// crashRun is one crash scenario's moving parts.
type crashRun struct {
	pack  *child
	watch *pgWatch
	push  *pushProxy
}

func crash(ctx context.Context, e *env, o Options, rep *Report, arm func(*crashRun, func() bool), disarm func(*crashRun)) error {
	c := &crashRun{}
	return crashWith(ctx, e, o, rep, c, func(fire func() bool) { arm(c, fire) }, func() { disarm(c) }, func() error {
		c.pack.kill()
		return nil
	})
}

// crashWith runs Pack as a child behind the emulator, publishes the
// workload and, o.Kills times, arms a fault point whose hook calls fault
// (kill Pack, or restart PostgreSQL); after a kill Pack is started again.
// It returns once every message is acked (or the time is up).
func crashWith(ctx context.Context, e *env, o Options, rep *Report, c *crashRun, arm func(func() bool), disarm func(), fault func() error) error {
	u, err := url.Parse(e.dsn)
	if err != nil {
		return err
	}
	if c.watch, err = startPGWatch(u.Host); err != nil {
		return err
	}
	defer c.watch.close()
	u.Host = c.watch.addr()

	ps := e.sd.pubsub
	client, err := ps.Client(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	topic := fmt.Sprintf("projects/%s/topics/%s", pubsubProject, e.name)
	rejects := topic + "-rejects"
	for _, t := range []string{topic, rejects} {
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: t}); err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}

	c.pack, err = newChild("pack-"+e.name, e.sd.exe, e.sd.dir, map[string]string{
		"FUNCTION_TARGET":       "Pack",
		"DATABASE_URL":          u.String(),
		"DB_TIMEOUT":            childDBTimeout.String(),
		"BUCKET":                e.bucket,
		"STORAGE_EMULATOR_HOST": e.gcsHost,
		"GCS_TIMEOUT":           childGCSTimeout.String(),
		"KMS_KEY":               e.kms.KeyName(),
		"KMS_ENDPOINT":          e.kms.Endpoint(),
		"GOOGLE_CLOUD_PROJECT":  pubsubProject,
		"PUBSUB_EMULATOR_HOST":  ps.Host(),
		"REJECT_TOPIC":          e.name + "-rejects",
		"FLUSH_AGE":             "50ms",
		"LOG_LEVEL":             "info",
	})
	if err != nil {
		return err
	}
	if err := c.pack.start(ctx); err != nil {
		return err
	}
	defer func() {
		c.pack.stop(10 * time.Second)
		rep.ChildPeakRSSMiB = c.pack.peakRSSMiB()
		if rep.Figures == nil {
			rep.Figures = map[string]float64{}
		}
		// A redelivery Pack knows before it flushes writes nothing;
		// one that races its first delivery is found at the insert.
		rep.Figures["redelivered_duplicates"] = float64(c.pack.sumLog("batch flushed", "duplicates") +
			c.pack.sumLog("batch held only redeliveries; nothing written", "duplicates"))
		rep.Figures["pack_starts"] = float64(c.pack.starts)
	}()

	// Every ack Pack gives goes through the push proxy.
	c.push = newPushProxy(c.pack.url(), ackDeadline, func(attrs map[string]string) {
		if id, ok := idOf(attrs); ok {
			e.ack(id, nil)
		}
	})
	hs := httptest.NewServer(c.push)
	defer hs.Close()
	sub := &pubsubpb.Subscription{
		Name:               fmt.Sprintf("projects/%s/subscriptions/%s", pubsubProject, e.name),
		Topic:              topic,
		AckDeadlineSeconds: int32(ackDeadline / time.Second),
		PushConfig:         &pubsubpb.PushConfig{PushEndpoint: hs.URL + "/" + topic},
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil {
		return fmt.Errorf("push subscription: %w", err)
	}
	defer func() {
		_ = client.SubscriptionAdminClient.DeleteSubscription(context.WithoutCancel(ctx), &pubsubpb.DeleteSubscriptionRequest{Subscription: sub.Name})
		rep.Deliveries = c.push.deliveries.Load()
	}()

	// The emulator pushes two messages at a time: a smaller workload.
	small := o
	small.Replays = max(1, o.Replays/2)
	_, msgs := e.workload(1, small, uint64(len(e.name)))
	rep.Published = len(msgs)
	pub := client.Publisher(topic)
	defer pub.Stop()
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = pub.Publish(ctx, &pubsub.Message{Data: m.raw, Attributes: m.attributes()})
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}

	deadline := time.Now().Add(time.Duration(len(msgs))*200*time.Millisecond + 60*time.Second)
	for k := 0; k < o.Kills; k++ {
		// Spread the faults over the run: the k-th once a share of the
		// workload is acked.
		if err := e.waitAcked(ctx, (k+1)*len(msgs)/(o.Kills+2), deadline); err != nil {
			break
		}
		fired := make(chan error, 1)
		var armed atomic.Bool
		armed.Store(true)
		arm(func() bool {
			if !armed.CompareAndSwap(true, false) {
				return false
			}
			fired <- fault()
			return true
		})
		select {
		case err := <-fired:
			disarm()
			if err != nil {
				return err
			}
			rep.Kills++
		case <-time.After(30 * time.Second):
			disarm()
			if armed.CompareAndSwap(true, false) {
				return errors.New("the fault point was never reached")
			}
			if err := <-fired; err != nil {
				return err
			}
			rep.Kills++
		}
		if !c.pack.running() {
			// Cloud Run starts a new instance; the emulator redelivers.
			if err := c.pack.start(ctx); err != nil {
				return err
			}
		}
	}
	if err := e.waitAcked(ctx, len(msgs), deadline); err != nil {
		return fmt.Errorf("%w (%d pushes, %d acks, %d nacks, %d while Pack was down)", err,
			c.push.deliveries.Load(), c.push.acks.Load(), c.push.nacks.Load(), c.push.unreachable.Load())
	}
	return nil
}

// waitAcked waits until n messages are acked.
func (e *env) waitAcked(ctx context.Context, n int, deadline time.Time) error {
	for {
		e.mu.Lock()
		got := len(e.acked)
		e.mu.Unlock()
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d messages acked in time", got, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// idOf reads a segment's identity from its message attributes.
func idOf(attrs map[string]string) (segment.ID, bool) {
	project, err1 := strconv.ParseInt(attrs["project_id"], 10, 64)
	replay, err2 := uuid.Parse(attrs["replay_id"])
	seg, err3 := strconv.Atoi(attrs["segment_id"])
	if err := errors.Join(err1, err2, err3); err != nil {
		return segment.ID{}, false
	}
	return segment.ID{ProjectID: project, ReplayID: replay, SegmentID: seg, Type: segment.DefaultType}, true
}
