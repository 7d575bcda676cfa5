package main

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// createTopics creates the segment and reject topics and the publisher of
// the segment topic (for /ingest).
func (s *stack) createTopics(ctx context.Context) error {
	var err error
	if s.pubsub, err = s.ps.Client(ctx); err != nil {
		return err
	}
	for _, t := range []string{devSegmentTopic, devRejectTopic} {
		_, err := s.pubsub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: s.topicName(t)})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	s.publisher = s.pubsub.Publisher(s.topicName(devSegmentTopic))
	return nil
}

func (s *stack) topicName(id string) string {
	return fmt.Sprintf("projects/%s/topics/%s", devPubSubProject, id)
}

func (s *stack) subscriptionName(id string) string {
	return fmt.Sprintf("projects/%s/subscriptions/%s", devPubSubProject, id)
}

// subscribePack points the push subscription at Pack, which reads the
// push body itself (any path).
func (s *stack) subscribePack(ctx context.Context) error {
	endpoint := s.funcs["Pack"].url + "/"
	sub := &pubsubpb.Subscription{
		Name:               s.subscriptionName(devPushSubscription),
		Topic:              s.topicName(devSegmentTopic),
		AckDeadlineSeconds: int32(devAckDeadline / time.Second),
		PushConfig:         &pubsubpb.PushConfig{PushEndpoint: endpoint},
	}
	_, err := s.pubsub.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	if status.Code(err) == codes.AlreadyExists {
		// A reused emulator state: Pack has a new port now.
		err = s.pubsub.SubscriptionAdminClient.ModifyPushConfig(ctx, &pubsubpb.ModifyPushConfigRequest{
			Subscription: sub.Name,
			PushConfig:   sub.PushConfig,
		})
	}
	if err != nil {
		return fmt.Errorf("push subscription to Pack: %w", err)
	}
	return nil
}
