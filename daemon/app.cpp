#include "app.hpp"

#include "command_line.hpp"
#include "event_log.hpp"
#include "pass_log.hpp"
#include "service.hpp"
#include <agentlock/config.hpp>

#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <sys/resource.h>

namespace agentlock::daemon {

namespace {

int usage_error(const std::string& message) {
    std::cerr << "agentlockd: " << message << "\n";
    return k_exit_usage;
}

// Logs each lock (stderr) and prints it in the report (stdout) as the pass handles it.
template <typename Writer> class OnceSink final : public PassSink {
public:
    OnceSink(PassLogger& log, Writer& writer) : m_log(log), m_writer(writer) {}
    void on_tmux(const std::vector<TmuxServerReport>& servers) override {
        m_servers = servers;
        m_writer.on_tmux(servers);
    }
    void on_lock(LockRecord&& record) override {
        m_log.log_lock(record, record.tmux_server < m_servers.size()
                                   ? m_servers[record.tmux_server].facts
                                   : m_none);
        m_writer.on_lock(std::move(record));
    }

private:
    PassLogger& m_log;
    Writer& m_writer;
    std::vector<TmuxServerReport> m_servers;
    TmuxFacts m_none;
};

template <typename Writer>
PassReport stream_once(const Config& config, EventLog& log, Writer& writer) {
    const HostFacts host = read_host_facts();
    PassOptions options = pass_options_of(config);
    SystemProcessProbe processes;
    SystemTmuxProbes tmux(config.tmux_timeout);
    PassLogger pass_log(log);
    pass_log.begin_pass();
    OnceSink<Writer> sink(pass_log, writer);
    PassReport report = run_pass(options, processes, tmux, host, sink);
    writer.finish(report);
    pass_log.end_pass(report, false, std::chrono::steady_clock::now());
    return report;
}

int run_once(const Config& config, bool json, EventLog& log) {
    PassReport report;
    if (json) {
        JsonReportWriter writer(std::cout);
        report = stream_once(config, log, writer);
        std::cout << "\n";
    } else {
        TextReportWriter writer(std::cout);
        report = stream_once(config, log, writer);
    }
    std::cout.flush();
    if (!std::cout) {
        std::cerr << "agentlockd: write report to stdout: " << std::strerror(errno) << "\n";
        return k_exit_start_failure;
    }
    const bool any_root_ok = std::any_of(report.roots.begin(), report.roots.end(),
                                         [](const RootReport& r) { return r.ok; });
    return any_root_ok ? k_exit_ok : k_exit_start_failure;
}

} // namespace

Result<std::string> raise_nofile_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        const int saved = errno;
        return io_error("getrlimit", "RLIMIT_NOFILE", saved);
    }
    if (lim.rlim_cur < lim.rlim_max) {
        const rlim_t before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            const int saved = errno;
            Error e = io_error("setrlimit", "RLIMIT_NOFILE " + std::to_string(lim.rlim_max), saved);
            e.message += " (staying at " + std::to_string(before) + ")";
            return e;
        }
    }
    return lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(lim.rlim_cur);
}

int agentlockd_main(const std::vector<std::string>& args) {
    auto cl = parse_command_line(args);
    if (!cl) {
        return usage_error(cl.error().message + " (try --help)");
    }
    if (cl->mode == Mode::help) {
        std::cout << help_text();
        return k_exit_ok;
    }
    if (cl->mode == Mode::version) {
        std::cout << version_text() << "\n";
        return k_exit_ok;
    }

    const std::string config_path =
        cl->config_path.empty() ? default_config_path_if_present() : cl->config_path;
    auto config = resolve_config(config_path, cl->overrides);
    if (!config) {
        return usage_error(config.error().message);
    }
    if (cl->mode == Mode::check_config) {
        std::cout << "agentlockd: config OK ("
                  << (config_path.empty() ? std::string("no file") : config_path) << ")\n";
        for (const auto& [key, value] : config_fields(*config)) {
            std::cout << "  " << key << " = " << value << "\n";
        }
        return k_exit_ok;
    }

    // A closed stderr or stdout must be an error to report, not a silent death. (signal fails
    // only for an invalid signal number, which SIGPIPE is not.)
    (void)std::signal(SIGPIPE, SIG_IGN);
    EventLog log(config->log_format, config->log_level);
    const Result<std::string> raised = raise_nofile_limit();
    if (!raised) {
        log.log(LogLevel::warn, "daemon.nofile", {{"error", raised.error().message}});
    }
    const std::string nofile = raised ? *raised : raised.error().message;

    if (cl->mode == Mode::once) {
        return run_once(*config, cl->json, log);
    }

    try {
        Service service(*config, config_path, cl->overrides, log, system_backend(read_host_facts()),
                        {{"nofile", nofile}});
        return service.run();
    } catch (const std::exception& e) {
        log.log(LogLevel::error, "daemon.failed", {{"error", e.what()}});
        return k_exit_start_failure;
    }
}

} // namespace agentlock::daemon
