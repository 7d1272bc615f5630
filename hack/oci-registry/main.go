// Command oci-registry is the test registry that serves the OCI 1.1 referrers API for
// tagpin's tests: CUE's ociregistry server (it passes the OCI distribution conformance
// suite) over in-memory storage, behind TLS and htpasswd basic auth like the
// distribution 2.8 registry beside it.
//
// The access log (one combined-format line per request) goes to stdout, everything
// else to stderr. Content lives in memory: a restart starts empty.
package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"cuelabs.dev/go/oci/ociregistry/ocimem"
	"cuelabs.dev/go/oci/ociregistry/ociserver"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5444", "address to listen on")
	cert := flag.String("tls-cert", "", "PEM certificate (serve plain HTTP when empty)")
	key := flag.String("tls-key", "", "PEM private key of -tls-cert")
	htpasswd := flag.String("htpasswd", "", "htpasswd file of bcrypt entries (no auth when empty)")
	realm := flag.String("realm", "tagpin-test", "basic auth realm")
	flag.Parse()
	if err := run(*addr, *cert, *key, *htpasswd, *realm); err != nil {
		log.Fatalf("oci-registry: %v", err)
	}
}

func run(addr, cert, key, htpasswd, realm string) error {
	var handler http.Handler = ociserver.New(ocimem.New(), nil)
	if htpasswd != "" {
		users, err := readHtpasswd(htpasswd)
		if err != nil {
			return err
		}
		handler = &basicAuth{next: handler, realm: realm, users: users, ok: map[string]string{}}
	}
	handler = accessLog(handler, log.New(os.Stdout, "", 0))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("oci-registry: serving on %s (tls: %t, auth: %t)", addr, cert != "", htpasswd != "")
	if cert != "" {
		err = srv.ServeTLS(ln, cert, key)
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// readHtpasswd reads `user:bcrypt-hash` lines, as `htpasswd -B` writes them.
func readHtpasswd(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s: only bcrypt entries (htpasswd -B) are supported", path)
		}
		users[user] = []byte(hash)
	}
	return users, sc.Err()
}

// basicAuth answers 401 with a Basic challenge unless the request carries a user and
// password of the htpasswd file.
type basicAuth struct {
	next  http.Handler
	realm string
	users map[string][]byte
	mu    sync.Mutex
	// ok remembers passwords already checked, since bcrypt is slow by design.
	ok map[string]string
}

func (a *basicAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, password, present := r.BasicAuth()
	if present && a.valid(user, password) {
		a.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", a.realm))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}` + "\n"))
}

func (a *basicAuth) valid(user, password string) bool {
	hash, known := a.users[user]
	if !known {
		return false
	}
	a.mu.Lock()
	seen, cached := a.ok[user]
	a.mu.Unlock()
	if cached && subtle.ConstantTimeCompare([]byte(seen), []byte(password)) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	a.mu.Lock()
	a.ok[user] = password
	a.mu.Unlock()
	return true
}

// statusWriter records the status and size of a response for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	size   int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.size += n
	return n, err
}

// accessLog writes one combined-format line per request after it is answered, so a
// line's presence means every earlier request of the same connection was answered.
func accessLog(next http.Handler, l *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		user := "-"
		if u, _, ok := r.BasicAuth(); ok && u != "" {
			user = u
		}
		l.Printf("%s - %s [%s] %q %d %d %q %q", host, user, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method+" "+r.URL.RequestURI()+" "+r.Proto, sw.status, sw.size, r.Referer(), r.UserAgent())
	})
}
