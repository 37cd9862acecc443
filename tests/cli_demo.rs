//! `gohook demo`: builds the embedded HTTP example, runs it under gohook, sends requests and
//! shows the spans of the unmodified binary.

mod cli_support;

use cli_support::{gohook, scratch};

#[test]
fn the_demo_builds_the_example_serves_requests_and_shows_their_spans() {
    let dir = scratch("demo");
    let out = gohook(["demo", "--dir", &dir.to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Every request got its answer.
    for line in [
        "GET /hello -> 200 OK",
        "POST /users -> 201 Created",
        "GET /users/1 -> 200 OK",
        "GET /users/42 -> 404 Not Found",
        "GET /stats -> 200 OK",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }

    // One server span per request from the bundled net/http script, with its status code.
    let server: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("(net/http.serverHandler.ServeHTTP)"))
        .collect();
    assert_eq!(server.len(), 5, "{stderr}");
    for (path, code) in [
        ("/hello", 200),
        ("/users", 201),
        ("/users/1", 200),
        ("/users/42", 404),
        ("/stats", 200),
    ] {
        assert!(
            server
                .iter()
                .any(|l| l.contains(&format!("url.path=\"{path}\""))
                    && l.contains(&format!("http.response.status_code={code}"))),
            "no span for {path} with {code}:\n{stderr}"
        );
    }
    // The handlers nest under them, and the SQL spans carry redacted statements.
    assert!(stderr.contains("main.(*service).hello"), "{stderr}");
    assert!(stderr.contains("main.(*service).insertUser"), "{stderr}");
    assert!(
        stderr.contains("db.query.text=\"INSERT INTO users (name, email) VALUES (?, ?)\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hook-script errors"), "{stderr}");
}
