#pragma once
// Shared helpers for the test suites: temp dirs, real child processes, a private tmux server.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace agentlock::test {

/// The value of `key` among log or config fields, or "<missing>".
inline std::string field(const std::vector<std::pair<std::string, std::string>>& fields,
                         const std::string& key) {
    for (const auto& [k, v] : fields) {
        if (k == key) {
            return v;
        }
    }
    return "<missing>";
}

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction,
/// unreadable subdirectories included.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return m_path; }
    /// path() + "/" + rel
    std::string sub(const std::string& rel) const;

private:
    std::string m_path;
};

/// Writes `content` to `path`, creating parent directories.
void write_file(const std::string& path, const std::string& content);
/// Reads a whole file; throws on failure.
std::string read_file(const std::string& path);
bool exists(const std::string& path);
void make_dirs(const std::string& path);

/// A real child process, killed (SIGKILL) and reaped on destruction.
class Child {
public:
    Child() = default;
    explicit Child(pid_t pid) : m_pid(pid) {}
    Child(Child&& o) noexcept : m_pid(o.m_pid) { o.m_pid = -1; }
    Child& operator=(Child&& o) noexcept;
    ~Child();
    pid_t pid() const { return m_pid; }
    /// SIGKILL and reap now; the PID is then dead.
    void kill_and_reap();
    /// Forgets the PID without signalling it (for a child already reaped elsewhere).
    pid_t release() {
        pid_t p = m_pid;
        m_pid = -1;
        return p;
    }

private:
    pid_t m_pid = -1;
};

/// Starts `argv` (argv[0] looked up in PATH) as a child process.
Child spawn(const std::vector<std::string>& argv);
/// A child that sleeps until killed.
Child spawn_sleeper();
/// A child that has exited but is not reaped; returns once /proc shows it as a zombie.
Child spawn_zombie();
/// A PID that belonged to a process that has exited and been reaped.
pid_t dead_pid();

/// The whole content of a /proc file, or nullopt when it cannot be read. A process that exits
/// while its file is being read makes read(2) fail with ESRCH, which std::ifstream reports by
/// throwing from inside the stream buffer (and a throw in a destructor ends the test binary).
std::optional<std::string> read_proc_file(const std::string& path);

/// The state letter of /proc/<pid>/stat ('R', 'S', 'Z', ...), or '\0' when it cannot be read.
char process_state(pid_t pid);

/// Polls `pred` every 10 ms until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Runs a command through /bin/sh; returns exit status and captured stdout.
struct CommandResult {
    int status = -1;
    std::string out;
};
CommandResult run_command(const std::string& shell_command);

/// A real tmux server on a private -L socket. Empty config (-f /dev/null). On destruction the
/// server is killed (by PID when its socket is gone) and its socket file removed.
class TmuxServerFixture {
public:
    TmuxServerFixture();
    /// A server on the socket `name` (a name the code under test derives, such as gastown's).
    explicit TmuxServerFixture(std::string name);
    ~TmuxServerFixture();
    TmuxServerFixture(const TmuxServerFixture&) = delete;
    TmuxServerFixture& operator=(const TmuxServerFixture&) = delete;
    const std::string& socket_name() const { return m_name; }
    /// Absolute socket path (/tmp/tmux-UID/<name>, or under $TMUX_TMPDIR when constructed).
    const std::string& socket_path() const;
    /// Creates a detached session running `sleep`; returns its "$N" id.
    std::string new_session(const std::string& name);
    /// "%N" pane id of the session's first pane.
    std::string pane_of(const std::string& session_name);
    /// PID of the process in the session's first pane.
    pid_t pane_pid(const std::string& session_name);
    void kill_session(const std::string& name);
    void kill_server();
    /// `tmux -L <name> -f /dev/null <args>`, shell-quoted by the caller.
    CommandResult tmux(const std::string& args);

private:
    std::string m_name;
    std::string m_socket_path;
};

/// A lock JSON document as Go's MarshalIndent writes it.
std::string go_lock_json(long long pid, const std::string& acquired_at,
                         const std::string& session_id = "", const std::string& hostname = "");

/// What a body run as another user returned.
struct AsUserResult {
    bool dropped = false; ///< false: privileges could not be dropped (not root); see `output`
    std::string output;   ///< the body's return value, or why dropping failed
};

/// Forks, drops to uid/gid 65534 (nobody) in the child, runs `body` there and hands back what it
/// returned. Root ignores file modes, so permission tests need this.
AsUserResult run_as_nobody(const std::function<std::string()>& body);

/// The current time plus `offset`, as RFC 3339 with nanoseconds (what acquired_at holds).
std::string now_rfc3339(std::chrono::seconds offset = std::chrono::seconds(0));

/// This machine's hostname as the library sees it.
std::string local_hostname();

/// Open file descriptors of this process (from /proc/self/fd), the listing's own excluded.
int count_open_fds();

/// A 1 MiB tmpfs mounted at `target` (created if needed), lazily unmounted on destruction.
/// Mounting needs privileges: check error() and skip the test when it is set.
class TmpfsMount {
public:
    explicit TmpfsMount(const std::string& target);
    ~TmpfsMount();
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;
    /// Why the mount failed; empty once mounted.
    const std::string& error() const { return m_error; }

private:
    std::string m_target;
    std::string m_error;
};

} // namespace agentlock::test
