package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/devenv/loadgen"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// DefaultWarmUp is how long `codebank-dev run` warms the bank before it says it is ready.
const DefaultWarmUp = 15 * time.Second

// warmUpHolder names the card of the warm-up payments, kept in DATA_DIR/warm-up-card.json.
const warmUpHolder = "Code Bank Warm Up"

// warmUp asks the bank about a card of its own for d, from 100 up to 1,000 calls a second:
// each call goes from the ingress through Kafka to the authorizer and back, as a payment does,
// so the broker's just-in-time compiler and the bank's connections, caches and heap meet the
// first checkouts warm instead of compiling and growing under them. It asks (LookupCard,
// GetCard, VerifyCard with the card's own data) rather than pays: a payment would stay on the
// card's statement, in the index and on the dashboard that people open next.
func warmUp(ctx context.Context, grpcAddr string, keys grpcgateway.CallerKeys, file string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	conn, err := cli.Dial(cli.Loopback(grpcAddr), nil, keys, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	cards := codebankv1.NewCardServiceClient(conn)
	c, err := warmUpCard(ctx, cards, file)
	if err != nil {
		return fmt.Errorf("warm-up card: %w", err)
	}
	found, err := cards.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: c.Number})
	if err != nil {
		return err
	}
	id := found.GetCard().GetCardId()
	month, _ := strconv.Atoi(c.Expiry[:2])
	year, _ := strconv.Atoi("20" + c.Expiry[3:])
	steps := []loadgen.Step{
		{Rate: 100, Duration: d / 3, Measure: true},
		{Rate: 400, Duration: d / 3, Measure: true},
		{Rate: 1000, Duration: d - 2*(d/3), Measure: true},
	}
	results := loadgen.Run(ctx, steps, 5000, func(ctx context.Context, seq int) loadgen.Outcome {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		switch seq % 3 {
		case 0:
			_, err = cards.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: c.Number})
		case 1:
			_, err = cards.GetCard(ctx, &codebankv1.GetCardRequest{CardId: id})
		default:
			_, err = cards.VerifyCard(ctx, &codebankv1.VerifyCardRequest{Number: c.Number, ExpiryMonth: int32(month), ExpiryYear: int32(year), Cvv: c.CVV})
		}
		if err != nil {
			return loadgen.Outcome{Err: status.Code(err).String()}
		}
		return loadgen.Outcome{}
	})
	for _, r := range results {
		if len(r.Errors) > 0 {
			return fmt.Errorf("warm-up at %d/s: errors %v", r.Step.Rate, r.Errors)
		}
	}
	return ctx.Err()
}

// warmUpCard returns the warm-up card, issuing it the first time.
func warmUpCard(ctx context.Context, cards codebankv1.CardServiceClient, file string) (demoCard, error) {
	var c demoCard
	if b, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("read %s: %w", file, err)
		}
		if _, err := cards.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: c.Number}); err == nil {
			return c, nil
		} else if status.Code(err) != codes.NotFound {
			return c, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, err
	}
	resp, err := cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: warmUpHolder, LimitCents: 100})
	if err != nil {
		return c, err
	}
	cd := resp.GetCard()
	c = demoCard{Number: cd.GetNumber(), Holder: cd.GetHolderName(), Expiry: fmt.Sprintf("%02d/%02d", cd.GetExpiryMonth(), cd.GetExpiryYear()%100), CVV: resp.GetCvv()}
	b, _ := json.Marshal(c)
	return c, os.WriteFile(file, b, 0o600)
}
