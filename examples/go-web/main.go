// A tiny web app on the standard library: a greeting at `/`, and at `/facts` what it can
// see of where it runs.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"regexp"
)

var digits = regexp.MustCompile(`^[0-9]+$`)

func facts(w http.ResponseWriter, _ *http.Request) {
	cwd, _ := os.Getwd()
	entries, _ := os.ReadDir("/proc")
	processes := 0
	for _, entry := range entries {
		if digits.MatchString(entry.Name()) {
			processes++
		}
	}
	var probe any
	if path, ok := os.LookupEnv("PROBE"); ok {
		_, err := os.Stat(path)
		probe = err == nil
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"cwd":       cwd,
		"pid":       os.Getpid(),
		"processes": processes,
		"uid":       os.Getuid(),
		"probe":     probe,
		"version":   os.Getenv("SAGACTL_VERSION"),
	})
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/facts", facts)
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("SAGACTL_VERSION"))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
