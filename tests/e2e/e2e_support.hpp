#pragma once
// Helpers for end-to-end tests of the real agentlockd binary: start it as a child process, read its
// JSON log lines, receive its sd_notify messages, signal it and collect its exit status.

#include <boost/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <utility>
#include <vector>

namespace agentlock::test {
class Child;
} // namespace agentlock::test

namespace agentlock::e2e {

/// The agentlockd binary under test: $AGENTLOCKD; throws when it is not set.
std::string daemon_path();

/// Now (plus `offset`) as RFC 3339 in UTC with nine fractional digits, as Go writes acquired_at.
std::string rfc3339_now(std::chrono::seconds offset = std::chrono::seconds(0));

/// The member `key` of `o`, or null.
const boost::json::value* member(const boost::json::object& o, std::string_view key);
/// The string member `key`, or `fallback` when absent or not a string.
std::string str_or(const boost::json::object& o, std::string_view key, std::string fallback = "");
/// The integer member `key` (int64 or uint64), or nothing.
std::optional<long long> int_of(const boost::json::object& o, std::string_view key);
/// The entry of a --once --json report's "locks" whose lock_path is `path`.
std::optional<boost::json::object> lock_entry(const boost::json::object& doc,
                                              const std::string& path);

/// realpath(3) of an existing path; throws on failure.
std::string real_path(const std::string& path);

/// One sd_notify datagram: its raw text and its newline-separated KEY=VALUE assignments.
struct NotifyMessage {
    std::string raw;
    std::map<std::string, std::string> fields;
    /// True when the datagram assigns `key` (and, when given, exactly `value`).
    bool has(const std::string& key, std::optional<std::string> value = std::nullopt) const;
};

/// A datagram AF_UNIX socket bound at a path, read by a background thread so that a daemon
/// sending to it never blocks on a full queue.
class NotifyReceiver {
public:
    /// Binds `path` (must not exist; at most 107 bytes).
    explicit NotifyReceiver(std::string path);
    ~NotifyReceiver();
    NotifyReceiver(const NotifyReceiver&) = delete;
    NotifyReceiver& operator=(const NotifyReceiver&) = delete;

    /// The socket path, for NOTIFY_SOCKET.
    const std::string& path() const { return m_path; }
    /// Every message received so far, in arrival order.
    std::vector<NotifyMessage> messages() const;
    /// Number of messages received so far.
    std::size_t count() const;
    /// Waits until a message at index >= `from` satisfies `pred`; returns its index.
    std::optional<std::size_t>
    wait_for(const std::function<bool(const NotifyMessage&)>& pred, std::size_t from = 0,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    /// wait_for a message that assigns `key` (= `value` when given).
    std::optional<std::size_t>
    wait_for_key(const std::string& key, std::optional<std::string> value = std::nullopt,
                 std::size_t from = 0,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    /// Messages at index >= `from` that assign `key` (= `value` when given).
    std::size_t count_key(const std::string& key, std::optional<std::string> value = std::nullopt,
                          std::size_t from = 0) const;

private:
    void receive_loop();

    std::string m_path;
    int m_fd = -1;
    int m_stop_pipe[2] = {-1, -1};
    mutable std::mutex m_mutex;
    std::vector<NotifyMessage> m_messages;
    std::thread m_thread;
};

/// How to start the daemon.
struct DaemonSpec {
    std::vector<std::string> args;          ///< arguments after argv[0]
    std::string notify_socket;              ///< NOTIFY_SOCKET; empty leaves it unset
    std::optional<long long> watchdog_usec; ///< sets WATCHDOG_USEC and WATCHDOG_PID=<daemon pid>
    std::vector<std::string> extra_env;     ///< more "KEY=VALUE" entries (replacing inherited ones)
    /// Sets JOURNAL_STREAM to the device and inode of the daemon's stderr, as systemd does when
    /// stderr is connected to the journal.
    bool journal_stream_is_stderr = false;
    /// A command that runs the daemon, given before its path: {launcher, its args...}; its last
    /// argument is followed by daemon_path() and `args` (e.g. tests/support/without_syscalls).
    std::vector<std::string> launcher;
};

/// How a child process ended.
struct ExitStatus {
    bool exited = false; ///< true: `code` is the exit code; false: killed by `signal`
    int code = -1;
    int signal = 0;
    /// "exit N" or "signal N", for failure messages.
    std::string describe() const;
};

/// One parsed JSON log line with its position in the stream.
struct LogEvent {
    std::size_t index = 0; ///< position among all parsed events, from 0
    boost::json::object fields;
    /// The "event" field, or "" when absent.
    std::string name() const;
    /// A string field, or nullopt when absent or not a string.
    std::optional<std::string> str(std::string_view key) const;
    /// The line as JSON, for failure messages.
    std::string dump() const;
};

/// The real agentlockd as a child process with stdout and stderr captured in files under a
/// directory. Killed (SIGKILL) and reaped on destruction if it still runs.
class DaemonProcess {
public:
    /// Forks and execs daemon_path() (through `spec.launcher`, if any) with `spec`; output goes to
    /// `<dir>/daemon-N.{out,err}`.
    DaemonProcess(const std::string& dir, const DaemonSpec& spec);
    ~DaemonProcess();
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    pid_t pid() const { return m_pid; }
    /// True until the process has been reaped (reaps it if it has exited).
    bool running();
    /// kill(pid, sig); throws if the process is gone.
    void send_signal(int sig);
    /// Waits for the process to exit; nullopt if it still runs after `timeout`.
    std::optional<ExitStatus>
    wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// SIGKILL and reap (no-op when already reaped).
    void kill_now();

    /// Everything written to stdout / stderr so far.
    std::string stdout_text() const;
    std::string stderr_text() const;
    /// Complete log lines (stderr) so far, including ones that are not JSON.
    std::vector<std::string> log_lines();
    /// Log lines that parse as JSON objects, so far.
    std::vector<LogEvent> events();
    /// Number of parsed events so far: an index to pass as `from`.
    std::size_t event_count();
    /// Waits for an event named `name` at index >= `from` that satisfies `pred`; gives up early
    /// when the daemon has exited.
    std::optional<LogEvent>
    wait_for_event(std::string_view name,
                   const std::function<bool(const LogEvent&)>& pred = nullptr, std::size_t from = 0,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// Waits until `n` events named `name` exist at index >= `from`; returns the n-th (gives up
    /// early when the daemon has exited).
    std::optional<LogEvent>
    wait_for_nth_event(std::string_view name, std::size_t n, std::size_t from = 0,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// Events named `name` at index >= `from` that satisfy `pred`.
    std::vector<LogEvent> find_events(std::string_view name,
                                      const std::function<bool(const LogEvent&)>& pred = nullptr,
                                      std::size_t from = 0);
    /// The last lines of stderr and stdout, for failure messages.
    std::string tail(std::size_t max_chars = 4000) const;

private:
    void read_new_output();

    pid_t m_pid = -1;
    std::string m_out_path;
    std::string m_err_path;
    std::optional<ExitStatus> m_status;
    std::size_t m_err_offset = 0;
    std::string m_partial;
    std::vector<std::string> m_lines;
    std::vector<LogEvent> m_events;
};

/// A predicate for DaemonProcess::wait_for_event and find_events: the event is about the lock at
/// `path` (its field `lock_path`, docs/logging.md).
std::function<bool(const LogEvent&)> about_lock(const std::string& path);

/// For a fixture's TearDown: when there is a daemon, SIGKILLs and reaps it and, when
/// `test_failed` (pass ::testing::Test::HasFailure()), prints its last `tail_chars` of output to
/// stderr; then resets `daemon`.
void tear_down_daemon(std::unique_ptr<DaemonProcess>& daemon, bool test_failed,
                      std::size_t tail_chars = 4000);

/// Worker trees under a root directory, `<root>/<name>/.runtime/agent.lock`, with locks written
/// as the Go implementation writes them. The fixtures of the suites that drive the daemon derive
/// from it and set m_root in SetUp.
class WorkerRoot {
public:
    WorkerRoot() = default;
    explicit WorkerRoot(std::string root_dir) : m_root(std::move(root_dir)) {}

    const std::string& root() const { return m_root; }
    /// `<root>/<name>`.
    std::string worker(const std::string& name) const;
    /// `<root>/<name>/.runtime`.
    std::string runtime(const std::string& name) const;
    /// `<root>/<name>/.runtime/agent.lock`.
    std::string lock_path(const std::string& name) const;
    /// Writes `content` as the worker's lock; returns the lock path.
    std::string put_lock(const std::string& name, const std::string& content) const;
    /// A lock whose PID is dead, acquired 5 s ago on this host, recording `session` ("" for
    /// none): stale unless that session is alive.
    std::string put_stale(const std::string& name, const std::string& session = "") const;
    /// A lock held by the live `owner` (spawned before acquired_at is taken), on this host.
    std::string put_live(const std::string& name, const test::Child& owner,
                         const std::string& session = "") const;
    /// The content put_stale writes.
    static std::string stale_json(const std::string& session = "");

protected:
    std::string m_root;
};

/// The outcome of running the daemon to completion.
struct RunResult {
    ExitStatus status;
    bool timed_out = false;
    std::string out;
    std::string err;
};

/// Runs daemon_path() with `args` to completion (killed after `timeout`), output captured under
/// `dir`.
RunResult run_daemon(const std::string& dir, const std::vector<std::string>& args,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Leaves a socket file at `path` that nobody listens on (as a tmux server that died does):
/// connect(2) to it fails with ECONNREFUSED.
void make_dead_socket(const std::string& path);

/// A stream socket listening at a path that never accepts: clients connect (into the backlog)
/// and then wait forever for an answer. Closed and unlinked on destruction.
class HangingListener {
public:
    explicit HangingListener(std::string path);
    ~HangingListener();
    HangingListener(const HangingListener&) = delete;
    HangingListener& operator=(const HangingListener&) = delete;

private:
    std::string m_path;
    int m_fd = -1;
};

/// Parses a whole string as a JSON value; nullopt (with `error` set) when it does not parse.
std::optional<boost::json::value> parse_json(std::string_view text, std::string* error = nullptr);

} // namespace agentlock::e2e
