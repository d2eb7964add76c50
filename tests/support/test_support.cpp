#include "test_support.hpp"

#include <agentlock/lock_file.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace agentlock::test {

namespace fs = std::filesystem;

namespace {

std::string temp_base() {
    const char* t = std::getenv("TMPDIR");
    return (t != nullptr && *t != '\0') ? t : "/tmp";
}

// Makes every directory below `p` readable, writable and searchable so it can be removed.
void open_up(const fs::path& p) {
    std::error_code ec;
    fs::permissions(p, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto it =
             fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec) && !it->is_symlink(ec)) {
            fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
        }
    }
}

} // namespace

TempDir::TempDir() {
    std::string tmpl = temp_base() + "/agentlock-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    m_path = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    open_up(m_path);
    fs::remove_all(m_path, ec);
}

std::string TempDir::sub(const std::string& rel) const {
    return m_path + "/" + rel;
}

void make_dirs(const std::string& path) {
    fs::create_directories(path);
}

void write_file(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
        throw std::runtime_error("cannot write " + path);
    }
    out << content;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

Child& Child::operator=(Child&& o) noexcept {
    if (this != &o) {
        kill_and_reap();
        m_pid = o.m_pid;
        o.m_pid = -1;
    }
    return *this;
}

Child::~Child() {
    kill_and_reap();
}

void Child::kill_and_reap() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        int st = 0;
        while (::waitpid(m_pid, &st, 0) < 0 && errno == EINTR) {
        }
        m_pid = -1;
    }
}

Child spawn(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    return Child(pid);
}

Child spawn_sleeper() {
    return spawn({"sleep", "100000"});
}

Child spawn_zombie() {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::_exit(0);
    }
    bool zombie = wait_until([&] { return process_state(pid) == 'Z'; });
    if (!zombie) {
        throw std::runtime_error("child " + std::to_string(pid) + " never became a zombie");
    }
    return Child(pid);
}

pid_t dead_pid() {
    Child c = spawn({"true"});
    pid_t pid = c.pid();
    int st = 0;
    ::waitpid(pid, &st, 0);
    // Already reaped: the PID must not be signalled again, it may belong to someone else now.
    c.release();
    return pid;
}

std::optional<std::string> read_proc_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::nullopt;
    }
    std::string text;
    char buf[4096];
    while (true) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            ::close(fd);
            if (n < 0) {
                return std::nullopt;
            }
            return text;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
}

char process_state(pid_t pid) {
    const auto text = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
    if (!text) {
        return '\0';
    }
    const auto close = text->rfind(')');
    return close != std::string::npos && close + 2 < text->size() ? (*text)[close + 2] : '\0';
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (pred()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return pred();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

CommandResult run_command(const std::string& shell_command) {
    CommandResult r;
    FILE* p = ::popen(shell_command.c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        r.out.append(buf, n);
    }
    int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

namespace {
std::atomic<int> g_tmux_counter{0};

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

std::string tmux_socket_dir() {
    const char* dir = std::getenv("TMUX_TMPDIR");
    std::string base = (dir != nullptr && *dir != '\0') ? dir : "/tmp";
    return base + "/tmux-" + std::to_string(::getuid());
}

// A /proc file's whole content, or "" when it cannot be read (the process has gone).
std::string slurp(const std::string& path) {
    return read_proc_file(path).value_or("");
}

// PIDs of the tmux servers for `-L name`: comm "tmux: server", and the command line it was
// started with (tmux keeps the first client's argv) holds "-L" followed by the name.
std::vector<pid_t> tmux_servers_named(const std::string& name) {
    std::vector<pid_t> pids;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return pids;
    }
    const std::string needle = std::string("-L") + '\0' + name + '\0';
    while (const dirent* e = ::readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') {
            continue;
        }
        const std::string dir = std::string("/proc/") + e->d_name;
        if (slurp(dir + "/comm").rfind("tmux: server", 0) == 0 &&
            slurp(dir + "/cmdline").find(needle) != std::string::npos) {
            pids.push_back(static_cast<pid_t>(pid));
        }
    }
    ::closedir(proc);
    return pids;
}

} // namespace

TmuxServerFixture::TmuxServerFixture()
    : m_name("agentlock-test-" + std::to_string(::getpid()) + "-" +
             std::to_string(g_tmux_counter++)),
      m_socket_path(tmux_socket_dir() + "/" + m_name) {}

TmuxServerFixture::TmuxServerFixture(std::string name) : m_name(std::move(name)) {}

TmuxServerFixture::~TmuxServerFixture() {
    // kill-server reaches the server through its socket; a test may have deleted that socket
    // (or failed before recreating it), so any server left for this name is killed by PID.
    kill_server();
    for (pid_t pid : tmux_servers_named(m_name)) {
        if (::kill(pid, SIGKILL) != 0) {
            const int saved = errno;
            if (saved != ESRCH) {
                std::fprintf(stderr, "TmuxServerFixture: kill %d: %s\n", static_cast<int>(pid),
                             std::strerror(saved));
            }
        }
    }
    // An ended tmux server leaves its socket file behind: remove it, so runs do not pile them up.
    if (::unlink(m_socket_path.c_str()) != 0) {
        const int saved = errno;
        if (saved != ENOENT) {
            std::fprintf(stderr, "TmuxServerFixture: unlink %s: %s\n", m_socket_path.c_str(),
                         std::strerror(saved));
        }
    }
}

const std::string& TmuxServerFixture::socket_path() const {
    return m_socket_path;
}

CommandResult TmuxServerFixture::tmux(const std::string& args) {
    return run_command("tmux -L '" + m_name + "' -f /dev/null " + args + " 2>/dev/null");
}

std::string TmuxServerFixture::new_session(const std::string& name) {
    auto r = tmux("new-session -d -s '" + name + "' -P -F '#{session_id}' 'sleep 100000'");
    if (r.status != 0) {
        throw std::runtime_error("tmux new-session " + name + " failed");
    }
    return trim(r.out);
}

std::string TmuxServerFixture::pane_of(const std::string& session_name) {
    return trim(tmux("list-panes -t '" + session_name + "' -F '#{pane_id}'").out);
}

pid_t TmuxServerFixture::pane_pid(const std::string& session_name) {
    return static_cast<pid_t>(
        std::stol(trim(tmux("list-panes -t '" + session_name + "' -F '#{pane_pid}'").out)));
}

void TmuxServerFixture::kill_session(const std::string& name) {
    tmux("kill-session -t '" + name + "'");
}

void TmuxServerFixture::kill_server() {
    tmux("kill-server");
}

std::string go_lock_json(long long pid, const std::string& acquired_at,
                         const std::string& session_id, const std::string& hostname) {
    std::string s =
        "{\n  \"pid\": " + std::to_string(pid) + ",\n  \"acquired_at\": \"" + acquired_at + "\"";
    if (!session_id.empty()) {
        s += ",\n  \"session_id\": \"" + session_id + "\"";
    }
    if (!hostname.empty()) {
        s += ",\n  \"hostname\": \"" + hostname + "\"";
    }
    return s + "\n}";
}

AsUserResult run_as_nobody(const std::function<std::string()>& body) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    pid_t child = ::fork();
    if (child < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (child == 0) {
        ::close(fds[0]);
        std::string out;
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0) {
            out = "N" + std::string(std::strerror(errno));
        } else {
            out = "Y" + body();
        }
        const char* p = out.data();
        std::size_t left = out.size();
        while (left > 0) {
            ssize_t n = ::write(fds[1], p, left);
            if (n <= 0) {
                ::_exit(2);
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    AsUserResult r;
    if (text.empty()) {
        r.output = "the child died before reporting (status " + std::to_string(status) + ")";
        return r;
    }
    r.dropped = text[0] == 'Y';
    r.output = text.substr(1);
    return r;
}

std::string now_rfc3339(std::chrono::seconds offset) {
    return format_rfc3339(std::chrono::time_point_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now() + offset));
}

std::string local_hostname() {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

int count_open_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        throw std::runtime_error(std::string("opendir /proc/self/fd: ") + std::strerror(errno));
    }
    int n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    ::closedir(d);
    return n - 1; // the opendir's own fd
}

TmpfsMount::TmpfsMount(const std::string& target) : m_target(target) {
    make_dirs(target);
    if (::mount("tmpfs", target.c_str(), "tmpfs", 0, "size=1m") != 0) {
        m_error = "mount -t tmpfs " + target + ": " + std::strerror(errno);
    }
}

TmpfsMount::~TmpfsMount() {
    if (m_error.empty()) {
        ::umount2(m_target.c_str(), MNT_DETACH);
    }
}

} // namespace agentlock::test
