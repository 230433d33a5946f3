//go:build !linux

package main

import (
	"context"
	"log/slog"
)

func notifyReady(context.Context, *slog.Logger, func(context.Context) error) func() {
	return func() {}
}

func notifyStopping() {}

func inheritedListeners(*slog.Logger) (listeners, error) { return listeners{}, nil }
