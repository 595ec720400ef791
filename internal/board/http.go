package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Paths the Handler serves.
const (
	StatePath = "/v1/board"
	// PressPath is POST /v1/board/buttons/{name}/press.
	PressPath = "/v1/board/buttons/{name}/press"
)

// maxResponse bounds what Client reads.
const maxResponse = 1 << 20

// errorBody is every error's shape, as in the local API.
type errorBody struct {
	Error string `json:"error"`
}

// Handler serves p: GET /v1/board returns its State; POST /v1/board/buttons/{name}/press
// presses a button (204; 404 if the board has no such button). Mount it on the agent's local
// API mux for both patterns, or at "/v1/board" and "/v1/board/".
func Handler(p Panel) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatePath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.State())
	})
	mux.HandleFunc("POST "+PressPath, func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := p.Press(name); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrNoPeripheral) {
				status = http.StatusNotFound
			}
			writeJSON(w, status, errorBody{Error: err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Client reads and drives a board served by Handler, for `rampart-agent board`.
type Client struct {
	// HTTP reaches the server (for the local API: a client that dials its Unix socket).
	HTTP *http.Client
	// Base is the URL the paths are relative to, such as "http://agent".
	Base string
}

// State returns the board's state.
func (c *Client) State(ctx context.Context) (State, error) {
	var st State
	err := c.do(ctx, http.MethodGet, StatePath, &st)
	return st, err
}

// Press presses a button.
func (c *Client) Press(ctx context.Context, button string) error {
	return c.do(ctx, http.MethodPost, "/v1/board/buttons/"+url.PathEscape(button)+"/press", nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("board: %s", e.Error)
		}
		return fmt.Errorf("board: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}
