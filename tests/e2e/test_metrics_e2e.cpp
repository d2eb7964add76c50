// agentlockd's metrics_file as Prometheus sees it: the real agentlockd writes it into a
// directory that a real prometheus-node-exporter (the Debian package; scripts/install-deps.sh
// installs it) serves with its textfile collector, and the test scrapes /metrics over loopback.

#include "daemon_fixture.hpp"
#include "e2e_support.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace agentlock::e2e {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::go_lock_json;
using test::local_hostname;
using test::make_dirs;
using test::read_file;
using test::spawn_sleeper;
using test::wait_until;

constexpr const char* k_node_exporter = "/usr/bin/prometheus-node-exporter";

// prometheus-node-exporter with only the textfile collector, on a loopback port the kernel
// picks; its log (where it says the port) goes to a file. SIGKILLed and reaped on destruction.
class NodeExporter {
public:
    NodeExporter(const std::string& textfile_dir, const std::string& log_path) {
        m_pid = ::fork();
        if (m_pid < 0) {
            throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
        }
        if (m_pid == 0) {
            const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) {
                ::_exit(127);
            }
            const std::string dir_flag = "--collector.textfile.directory=" + textfile_dir;
            ::execl(k_node_exporter, k_node_exporter, "--collector.disable-defaults",
                    "--collector.textfile", dir_flag.c_str(), "--web.listen-address=127.0.0.1:0",
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // It logs: msg="Listening on" address=127.0.0.1:PORT
        const std::regex listening(R"(Listening on.* address=127\.0\.0\.1:([0-9]+))");
        const bool up = wait_until(
            [&] {
                std::smatch m;
                const std::string log = test::exists(log_path) ? read_file(log_path) : "";
                if (std::regex_search(log, m, listening)) {
                    m_port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
                    return true;
                }
                return ::waitpid(m_pid, nullptr, WNOHANG) == m_pid && (m_pid = -1, true);
            },
            10s);
        if (!up || m_pid < 0) {
            throw std::runtime_error("prometheus-node-exporter did not start listening:\n" +
                                     (test::exists(log_path) ? read_file(log_path) : ""));
        }
    }
    ~NodeExporter() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
    }
    NodeExporter(const NodeExporter&) = delete;
    NodeExporter& operator=(const NodeExporter&) = delete;

    /// GET /metrics: the body, or the reason it failed.
    std::string scrape() const {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(m_port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string response;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
            const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size())) {
                char buf[16384];
                ssize_t n = 0;
                while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
                    response.append(buf, static_cast<std::size_t>(n));
                }
            }
        }
        ::close(fd);
        const auto body = response.find("\r\n\r\n");
        if (response.rfind("HTTP/1.0 200", 0) != 0 || body == std::string::npos) {
            return "scrape failed: " + response.substr(0, 200);
        }
        return response.substr(body + 4);
    }

private:
    pid_t m_pid = -1;
    std::uint16_t m_port = 0;
};

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

class Metrics : public DaemonFixture {
protected:
    Metrics() : DaemonFixture(8000) {}
    void SetUp() override {
        DaemonFixture::SetUp();
        m_textfiles = m_dir + "/textfile";
        make_dirs(m_textfiles);
        m_tmux.new_session("held");
    }

    // Scrapes until every line in `want` is there; returns the last scrape.
    std::string scrape_until(const std::vector<std::string>& want) {
        std::string body;
        wait_until(
            [&] {
                body = m_exporter->scrape();
                for (const auto& line : want) {
                    if (!has_line(body, line)) {
                        return false;
                    }
                }
                return true;
            },
            5s);
        return body;
    }

    std::string m_textfiles;
    std::unique_ptr<NodeExporter> m_exporter;
};

TEST_F(Metrics, NodeExporterServesTheDaemonsCountsAfterARemovalAndAnOwnerDeath) {
    Child owner = spawn_sleeper();
    const std::string stale = put_stale("stale");
    const std::string live =
        put_lock("live", go_lock_json(owner.pid(), rfc3339_now(), "", local_hostname()));
    put_stale("held", "held"); // its owner is dead, its tmux session lives
    put_lock("broken", "{ not json");

    m_exporter = std::make_unique<NodeExporter>(m_textfiles, m_dir + "/node_exporter.log");
    const std::string metrics_file = m_textfiles + "/agentlock.prom";
    DaemonSpec spec;
    spec.args = hourly_args({"--metrics-file", metrics_file});
    m_daemon = std::make_unique<DaemonProcess>(m_dir, spec);
    ASSERT_TRUE(m_daemon->wait_for_event("lock.removed", about_lock(stale))) << m_daemon->tail();

    const std::string server = "-L " + m_tmux.socket_name();
    std::string body = scrape_until({
        "agentlock_locks{verdict=\"live\"} 1",
        "agentlock_locks{verdict=\"stale\"} 0",
        "agentlock_locks{verdict=\"held-by-session\"} 1",
        "agentlock_locks{verdict=\"invalid\"} 1",
        "agentlock_locks{verdict=\"orphaned\"} 0",
        "agentlock_removals_total{trigger=\"pass\"} 1",
        "agentlock_removals_total{trigger=\"pidfd\"} 0",
        "agentlock_passes_total 1",
        "agentlock_tmux_server_state{server=\"" + server + "\",state=\"ok\"} 1",
        "agentlock_tmux_server_state{server=\"" + server + "\",state=\"unknown\"} 0",
        "agentlock_collisions{kind=\"duplicate-session\"} 0",
        "agentlock_events_degraded{source=\"pidfd\"} 0",
        "agentlock_events_degraded{source=\"inotify\"} 0",
        "node_textfile_scrape_error 0",
    });
    EXPECT_TRUE(has_line(body, "node_textfile_scrape_error 0")) << body;
    EXPECT_TRUE(has_line(body, "agentlock_removals_total{trigger=\"pass\"} 1")) << body;
    EXPECT_TRUE(has_line(body, "agentlock_locks{verdict=\"live\"} 1")) << body;
    EXPECT_TRUE(
        has_line(body, "agentlock_tmux_server_state{server=\"" + server + "\",state=\"ok\"} 1"))
        << body;
    EXPECT_NE(body.find("# TYPE agentlock_removals_total counter"), std::string::npos) << body;
    EXPECT_NE(body.find("# TYPE agentlock_locks gauge"), std::string::npos) << body;
    EXPECT_TRUE(
        std::regex_search(body, std::regex(R"(\nagentlock_pass_duration_seconds [0-9.e+-]+\n)")))
        << body;
    EXPECT_TRUE(std::regex_search(
        body, std::regex(R"(\nagentlock_last_pass_timestamp_seconds [0-9.e+]+\n)")))
        << body;
    // The collector read the file (1.5.0 names it by its path, later versions by its name).
    EXPECT_TRUE(std::regex_search(
        body, std::regex(R"(\nnode_textfile_mtime_seconds\{file="[^"]*agentlock\.prom"\} )")))
        << body;

    // The owner dies: a re-check (pidfd) removes its lock, and the file follows without a pass.
    owner.kill_and_reap();
    ASSERT_TRUE(m_daemon->wait_for_event("lock.removed", about_lock(live))) << m_daemon->tail();
    body = scrape_until({
        "agentlock_locks{verdict=\"live\"} 0",
        "agentlock_removals_total{trigger=\"pidfd\"} 1",
        "agentlock_removals_total{trigger=\"pass\"} 1",
        "agentlock_passes_total 1",
        "node_textfile_scrape_error 0",
    });
    EXPECT_TRUE(has_line(body, "agentlock_removals_total{trigger=\"pidfd\"} 1")) << body;
    EXPECT_TRUE(has_line(body, "agentlock_locks{verdict=\"live\"} 0")) << body;
    EXPECT_TRUE(has_line(body, "agentlock_passes_total 1")) << body;
    EXPECT_TRUE(has_line(body, "node_textfile_scrape_error 0")) << body;
    // Only the file itself is in the directory: no temporary file was left behind.
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(m_textfiles)) {
        names.push_back(e.path().filename().string());
    }
    EXPECT_EQ(names, std::vector<std::string>{"agentlock.prom"});
}

} // namespace
} // namespace agentlock::e2e
