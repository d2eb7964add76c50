// bench_pass: times full passes (run_pass, dry run, real probes; `pass` keeps every record as
// --once used to, `stream` hands each to a sink and keeps summaries, as the daemon does) or bare
// walks (walk_locks with a visitor that only counts) over benchmark trees, and prints one JSON
// object per line.
//
//   bench_pass [--runs N] [--threads 1,2,4] [--mode pass|stream|walk] [--tmux-socket NAME] ROOT...
//
// Each thread count runs once untimed (the page cache is then warm), then --runs times, the
// thread counts taking turns. Per thread count it prints the median and every run's wall time,
// the median CPU time of the process (all threads), the counts of the last run, and the
// process's peak RSS (a high-water mark over all thread counts: run one thread count per
// process to compare RSS).

#include <agentlock/pass.hpp>
#include <agentlock/process_probe.hpp>
#include <agentlock/tmux_probe.hpp>
#include <agentlock/tree_walk.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <vector>

namespace {

using agentlock::PassOptions;
using agentlock::PassReport;

struct Args {
    std::vector<std::string> roots;
    std::vector<unsigned> threads = {1};
    unsigned runs = 5;
    std::string mode = "pass";
    std::string tmux_socket = "agentlock-bench-none"; // a private server that is not running
};

struct Sample {
    double wall_ms = 0;
    double cpu_ms = 0;
    std::uint64_t dirs = 0;
    std::uint64_t locks = 0;
    std::uint64_t unreadable = 0;
    std::uint64_t would_remove = 0;
};

double cpu_ms_now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto ms = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3;
    };
    return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// Receives a streaming pass's records and keeps none of them.
class DroppingSink final : public agentlock::PassSink {
public:
    void on_tmux(const std::vector<agentlock::TmuxServerReport>&) override {}
    void on_lock(agentlock::LockRecord&& record) override {
        const agentlock::LockRecord dropped = std::move(record);
    }
};

long peak_rss_kib() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Sample run_once(const Args& args, unsigned threads, agentlock::ProcessProbe& processes,
                agentlock::TmuxProbe& tmux, const agentlock::HostFacts& host) {
    Sample s;
    const double cpu0 = cpu_ms_now();
    const auto t0 = std::chrono::steady_clock::now();
    if (args.mode == "pass" || args.mode == "stream") {
        PassOptions options;
        options.roots = args.roots;
        options.dry_run = true;
        options.walk.threads = threads;
        PassReport report;
        if (args.mode == "pass") {
            report = agentlock::run_pass(options, processes, tmux, host);
        } else {
            // As the daemon runs it: each record handed over and dropped, summaries kept.
            options.per_lock_collisions = false;
            DroppingSink sink;
            report = agentlock::run_pass(options, processes, tmux, host, sink);
        }
        s.dirs = report.stats.dirs;
        s.locks = report.stats.locks;
        s.unreadable = report.stats.unreadable_dirs;
        s.would_remove = report.stats.would_remove;
    } else {
        agentlock::WalkOptions options;
        options.threads = threads;
        for (const auto& root : args.roots) {
            std::uint64_t sites = 0;
            auto walked = agentlock::walk_locks(root, options,
                                                [&sites](const agentlock::LockSite&) { ++sites; });
            if (!walked) {
                std::cerr << "bench_pass: " << walked.error().message << "\n";
                continue;
            }
            s.dirs += walked->dirs;
            s.unreadable += walked->unreadable_dirs;
            s.locks += sites;
        }
    }
    const auto t1 = std::chrono::steady_clock::now();
    s.wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    s.cpu_ms = cpu_ms_now() - cpu0;
    return s;
}

bool parse_unsigned(std::string_view text, unsigned& out) {
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc() && ptr == end;
}

int usage(const std::string& message) {
    std::cerr << "bench_pass: " << message << "\n"
              << "usage: bench_pass [--runs N] [--threads 1,2,4] [--mode pass|stream|walk] "
                 "[--tmux-socket NAME] ROOT...\n";
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--runs" && has_value) {
            if (!parse_unsigned(argv[++i], args.runs) || args.runs == 0) {
                return usage("--runs needs a positive number");
            }
        } else if (arg == "--threads" && has_value) {
            args.threads.clear();
            std::string_view list = argv[++i];
            while (!list.empty()) {
                const auto comma = list.find(',');
                unsigned n = 0;
                if (!parse_unsigned(list.substr(0, comma), n)) {
                    return usage("--threads needs numbers separated by commas");
                }
                args.threads.push_back(n);
                list = comma == std::string_view::npos ? "" : list.substr(comma + 1);
            }
        } else if (arg == "--mode" && has_value) {
            args.mode = argv[++i];
            if (args.mode != "pass" && args.mode != "stream" && args.mode != "walk") {
                return usage("--mode is pass, stream or walk");
            }
        } else if (arg == "--tmux-socket" && has_value) {
            args.tmux_socket = argv[++i];
        } else if (arg.rfind("--", 0) == 0) {
            return usage("unknown option " + arg);
        } else {
            args.roots.push_back(arg);
        }
    }
    if (args.roots.empty() || args.threads.empty()) {
        return usage("no root given");
    }

    const agentlock::HostFacts host = agentlock::read_host_facts();
    agentlock::SystemProcessProbe processes;
    agentlock::SystemTmuxProbe tmux(agentlock::TmuxServer{args.tmux_socket, {}});

    // Warm-up runs first (page cache, allocator), then the thread counts take turns, run after
    // run, so that load from other processes on a shared machine falls on all of them alike.
    const std::size_t n = args.threads.size();
    for (const unsigned threads : args.threads) {
        run_once(args, threads, processes, tmux, host);
    }
    std::vector<std::vector<double>> walls(n);
    std::vector<std::vector<double>> cpus(n);
    std::vector<Sample> lasts(n);
    for (unsigned r = 0; r < args.runs; ++r) {
        for (std::size_t i = 0; i < n; ++i) {
            lasts[i] = run_once(args, args.threads[i], processes, tmux, host);
            walls[i].push_back(lasts[i].wall_ms);
            cpus[i].push_back(lasts[i].cpu_ms);
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned threads = args.threads[i];
        const std::vector<double>& wall = walls[i];
        const std::vector<double>& cpu = cpus[i];
        const Sample& last = lasts[i];
        boost::json::object out;
        out["mode"] = args.mode;
        out["threads"] = threads;
        boost::json::array roots;
        for (const auto& root : args.roots) {
            roots.emplace_back(root);
        }
        out["roots"] = std::move(roots);
        out["median_ms"] = median(wall);
        out["cpu_median_ms"] = median(cpu);
        out["runs_ms"] = boost::json::array(wall.begin(), wall.end());
        out["dirs"] = last.dirs;
        out["locks"] = last.locks;
        out["unreadable_dirs"] = last.unreadable;
        out["would_remove"] = last.would_remove;
        out["peak_rss_kib"] = peak_rss_kib();
        std::cout << boost::json::serialize(out) << std::endl;
    }
    return 0;
}
