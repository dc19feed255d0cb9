//! A tiny web app on the standard library: a greeting at `/`, and at `/facts` what it can
//! see of where it runs. Its binary is `hello-web` (Cargo.toml), the default web command.
//! Written for Debian bookworm's rustc 1.63 (no `let ... else`).
use std::env;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

fn facts() -> String {
    let cwd = env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let processes = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
                .count()
        })
        .unwrap_or(0);
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("-1")
        .to_string();
    let probe = match env::var("PROBE") {
        Ok(path) => Path::new(&path).exists().to_string(),
        Err(_) => "null".to_string(),
    };
    let version = env::var("SAGACTL_VERSION").unwrap_or_default();
    format!(
        "{{\"cwd\": \"{cwd}\", \"pid\": {}, \"processes\": {processes}, \"uid\": {uid}, \
         \"probe\": {probe}, \"version\": \"{version}\"}}\n",
        std::process::id()
    )
}

fn main() {
    let port = env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind");
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(_) => continue,
        };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut request = String::new();
        let _ = reader.read_line(&mut request);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
            line.clear();
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (body, kind) = if path == "/facts" {
            (facts(), "application/json")
        } else {
            (format!("hello from {}\n", env::var("SAGACTL_VERSION").unwrap_or_default()), "text/plain")
        };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
