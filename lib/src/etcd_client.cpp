#include <agentlock/etcd_client.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <array>
#include <optional>

namespace agentlock {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::string_view k_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The largest answer read: a range over every claim of a big fleet (about 200 bytes a claim).
constexpr std::uint64_t k_max_body = 512ull * 1024 * 1024;

std::string url_of(const EtcdEndpoint& e) {
    const bool v6 = e.host.find(':') != std::string::npos;
    return std::string(e.tls ? "https://" : "http://") + (v6 ? "[" : "") + e.host +
           (v6 ? "]" : "") + ":" + e.port;
}

// grpc-gateway writes int64 fields as JSON strings; absent fields are zero.
std::int64_t int_field(const json::object& o, std::string_view name) {
    const json::value* v = o.if_contains(name);
    if (v == nullptr) {
        return 0;
    }
    if (v->is_int64()) {
        return v->get_int64();
    }
    if (v->is_uint64()) {
        return static_cast<std::int64_t>(v->get_uint64());
    }
    if (v->is_string()) {
        try {
            return std::stoll(std::string(v->get_string()));
        } catch (const std::exception&) {
            return 0;
        }
    }
    return 0;
}

} // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]) << 16 |
                                                  static_cast<unsigned char>(bytes[i + 1]) << 8 |
                                                  static_cast<unsigned char>(bytes[i + 2]));
        out += k_alphabet[n >> 18 & 63];
        out += k_alphabet[n >> 12 & 63];
        out += k_alphabet[n >> 6 & 63];
        out += k_alphabet[n & 63];
    }
    if (i < bytes.size()) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]) << 16);
        const bool two = i + 1 < bytes.size();
        if (two) {
            n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1]) << 8);
        }
        out += k_alphabet[n >> 18 & 63];
        out += k_alphabet[n >> 12 & 63];
        out += two ? k_alphabet[n >> 6 & 63] : '=';
        out += '=';
    }
    return out;
}

Result<std::string> base64_decode(std::string_view text) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        if (c == '=') {
            break;
        }
        const std::size_t pos = k_alphabet.find(c);
        if (pos == std::string_view::npos) {
            return invalid_input("base64", "not base64: " + std::string(text.substr(0, 40)));
        }
        acc = acc << 6 | static_cast<std::uint32_t>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>(acc >> bits & 0xff);
        }
    }
    return out;
}

std::string prefix_range_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(end.back());
        if (last < 0xff) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0'); // every key
}

struct EtcdClient::Impl {
    FleetConfig fleet;
    std::vector<EtcdEndpoint> endpoints;
    std::vector<std::string> urls;
    std::size_t current = 0;
    EtcdTraffic traffic;

    asio::io_context io;
    std::optional<asio::ssl::context> tls;
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
    std::optional<std::size_t> connected_to; // index of the endpoint the open connection reaches
    beast::flat_buffer buffer;

    explicit Impl(const FleetConfig& f) : fleet(f) {
        for (const auto& url : fleet.etcd) {
            if (auto e = parse_etcd_endpoint(url)) {
                endpoints.push_back(*e);
                urls.push_back(url_of(*e));
            }
        }
    }

    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

    void close() {
        if (plain || secure) {
            beast::error_code ignored;
            lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
            lowest().socket().close(ignored);
        }
        plain.reset();
        secure.reset();
        connected_to.reset();
        buffer.clear();
    }

    // Starts an operation with a handler and runs the loop until it completes or `deadline`
    // passes; then the connection is closed, which ends the operation (timed_out).
    template <typename Start> beast::error_code await(Clock::time_point deadline, Start start) {
        beast::error_code result = asio::error::timed_out;
        bool done = false;
        start([&](beast::error_code ec, auto&&...) {
            result = ec;
            done = true;
        });
        io.restart();
        const auto now = Clock::now();
        io.run_for(deadline > now ? deadline - now : Clock::duration::zero());
        if (!done) {
            if (plain || secure) {
                beast::error_code ignored;
                lowest().socket().close(ignored);
            }
            io.restart();
            io.run(); // the cancelled operation's handler
            result = asio::error::timed_out;
        }
        return result;
    }

    std::string tls_setup_error() {
        if (tls) {
            return {};
        }
        try {
            asio::ssl::context ctx(asio::ssl::context::tls_client);
            if (fleet.cacert.empty()) {
                ctx.set_default_verify_paths();
            } else {
                ctx.load_verify_file(fleet.cacert);
            }
            ctx.set_verify_mode(asio::ssl::verify_peer);
            if (!fleet.cert.empty()) {
                ctx.use_certificate_chain_file(fleet.cert);
                ctx.use_private_key_file(fleet.key, asio::ssl::context::pem);
            }
            tls.emplace(std::move(ctx));
        } catch (const boost::system::system_error& e) {
            return std::string("load TLS files (cacert ") + fleet.cacert + ", cert " + fleet.cert +
                   ", key " + fleet.key + "): " + e.what();
        }
        return {};
    }

    std::string connect(std::size_t index, Clock::time_point deadline) {
        close();
        const EtcdEndpoint& e = endpoints[index];
        // An address needs no resolver. A name does, and getaddrinfo cannot be interrupted: a
        // hung DNS server delays this request beyond its deadline (docs/fleet.md: use addresses).
        tcp::resolver resolver(io);
        tcp::resolver::results_type addresses;
        beast::error_code not_address;
        (void)asio::ip::make_address(e.host, not_address);
        const bool numeric = !not_address;
        beast::error_code ec = await(deadline, [&](auto handler) {
            auto done = [&addresses, handler](beast::error_code err,
                                              tcp::resolver::results_type r) mutable {
                addresses = std::move(r);
                handler(err);
            };
            if (numeric) {
                resolver.async_resolve(e.host, e.port, tcp::resolver::numeric_host, done);
            } else {
                resolver.async_resolve(e.host, e.port, done);
            }
        });
        if (ec) {
            resolver.cancel();
            return "resolve " + urls[index] + ": " + ec.message();
        }
        if (e.tls) {
            if (std::string err = tls_setup_error(); !err.empty()) {
                return err;
            }
            secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, *tls);
            // SSL_set_tlsext_host_name, spelled out: the macro casts old-style.
            if (SSL_ctrl(secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(e.host.c_str())) != 1) {
                return "TLS server name " + e.host + ": rejected";
            }
            secure->set_verify_callback(asio::ssl::host_name_verification(e.host));
        } else {
            plain = std::make_unique<beast::tcp_stream>(io);
        }
        ec = await(deadline, [&](auto handler) {
            lowest().socket().async_connect(*addresses.begin(), handler);
        });
        if (ec && addresses.size() > 1) {
            ec = await(deadline, [&](auto handler) {
                asio::async_connect(lowest().socket(), addresses, handler);
            });
        }
        if (ec) {
            close();
            return "connect " + urls[index] + ": " + ec.message();
        }
        if (secure) {
            ec = await(deadline, [&](auto handler) {
                secure->async_handshake(asio::ssl::stream_base::client, handler);
            });
            if (ec) {
                close();
                return "TLS handshake with " + urls[index] + ": " + ec.message();
            }
        }
        connected_to = index;
        return {};
    }

    // One request on endpoint `index`; the answer's body, or why there is none.
    std::string exchange(std::size_t index, std::string_view path, const std::string& body,
                         std::string& answer, unsigned& status) {
        const Clock::time_point deadline = Clock::now() + fleet.request_timeout;
        if (connected_to != index) {
            if (std::string err = connect(index, deadline); !err.empty()) {
                return err;
            }
        }
        http::request<http::string_body> req{http::verb::post, path, 11};
        req.set(http::field::host, endpoints[index].host + ":" + endpoints[index].port);
        req.set(http::field::content_type, "application/json");
        req.keep_alive(true);
        req.body() = body;
        req.prepare_payload();
        beast::error_code ec = await(deadline, [&](auto handler) {
            if (secure) {
                http::async_write(*secure, req, handler);
            } else {
                http::async_write(*plain, req, handler);
            }
        });
        traffic.requests += 1;
        traffic.bytes_sent += body.size() + 160; // headers: about 160 bytes
        if (ec) {
            close();
            return "send to " + urls[index] + std::string(path) + ": " + ec.message();
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(k_max_body);
        ec = await(deadline, [&](auto handler) {
            if (secure) {
                http::async_read(*secure, buffer, parser, handler);
            } else {
                http::async_read(*plain, buffer, parser, handler);
            }
        });
        if (ec) {
            close();
            return "read from " + urls[index] + std::string(path) + ": " + ec.message();
        }
        auto res = parser.release();
        status = res.result_int();
        answer = std::move(res.body());
        traffic.bytes_received += answer.size();
        if (!res.keep_alive()) {
            close();
        }
        return {};
    }

    Result<json::object> call(std::string_view path, const json::object& request) {
        const std::string body = json::serialize(request);
        std::string errors;
        for (std::size_t i = 0; i < endpoints.size(); ++i) {
            const std::size_t index = (current + i) % endpoints.size();
            const bool reused = connected_to == index;
            std::string answer;
            unsigned status = 0;
            std::string err = exchange(index, path, body, answer, status);
            if (!err.empty() && reused) {
                err = exchange(index, path, body, answer, status); // the server closed it idle
            }
            if (!err.empty()) {
                errors += (errors.empty() ? "" : "; ") + err;
                continue;
            }
            current = index;
            boost::system::error_code jec;
            json::value doc = json::parse(answer, jec);
            if (jec || !doc.is_object()) {
                return invalid_input(urls[index], "etcd " + urls[index] + std::string(path) +
                                                      ": answer is not a JSON object (HTTP " +
                                                      std::to_string(status) + ")");
            }
            json::object& o = doc.get_object();
            if (status != 200 || o.contains("error")) {
                const json::value* msg = o.if_contains("message");
                if (msg == nullptr) {
                    msg = o.if_contains("error");
                }
                return invalid_input(urls[index], "etcd " + urls[index] + std::string(path) +
                                                      ": HTTP " + std::to_string(status) + ": " +
                                                      (msg != nullptr && msg->is_string()
                                                           ? std::string(msg->get_string())
                                                           : json::serialize(o)));
            }
            return std::move(o);
        }
        Error e = invalid_input(fleet.etcd.empty() ? "etcd" : fleet.etcd.front(), errors);
        e.kind = ErrorKind::io;
        return e;
    }
};

EtcdClient::EtcdClient(const FleetConfig& fleet) : m_impl(std::make_unique<Impl>(fleet)) {}
EtcdClient::~EtcdClient() {
    m_impl->close();
}

Result<std::int64_t> EtcdClient::grant_lease(std::chrono::milliseconds ttl) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(ttl).count();
    auto r = m_impl->call("/v3/lease/grant", {{"TTL", seconds}});
    if (!r) {
        return r.error();
    }
    const std::int64_t id = int_field(*r, "ID");
    if (id == 0) {
        return invalid_input(endpoint(), "etcd granted no lease ID");
    }
    return id;
}

Result<std::int64_t> EtcdClient::keep_alive(std::int64_t lease) {
    auto r = m_impl->call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
    if (!r) {
        return r.error();
    }
    // The gateway streams: one message wrapped in "result". An unknown lease has no TTL.
    const json::value* result = r->if_contains("result");
    if (result == nullptr || !result->is_object()) {
        return invalid_input(endpoint(), "etcd keepalive answered without a result");
    }
    return int_field(result->get_object(), "TTL");
}

Status EtcdClient::put(std::string_view key, std::string_view value, std::int64_t lease) {
    json::object req{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) {
        req["lease"] = std::to_string(lease);
    }
    auto r = m_impl->call("/v3/kv/put", req);
    if (!r) {
        return r.error();
    }
    return {};
}

namespace {

Result<EtcdRange> range_of(Result<json::object> r) {
    if (!r) {
        return r.error();
    }
    EtcdRange out;
    if (const json::value* header = r->if_contains("header"); header && header->is_object()) {
        out.revision = int_field(header->get_object(), "revision");
    }
    const json::value* kvs = r->if_contains("kvs");
    if (kvs == nullptr || !kvs->is_array()) {
        return out;
    }
    for (const auto& item : kvs->get_array()) {
        if (!item.is_object()) {
            continue;
        }
        const json::object& o = item.get_object();
        EtcdKeyValue kv;
        const json::value* k = o.if_contains("key");
        const json::value* v = o.if_contains("value");
        if (k == nullptr || !k->is_string()) {
            continue;
        }
        auto key = base64_decode(k->get_string());
        auto value = v != nullptr && v->is_string() ? base64_decode(v->get_string())
                                                    : Result<std::string>(std::string());
        if (!key || !value) {
            continue;
        }
        kv.key = std::move(*key);
        kv.value = std::move(*value);
        kv.lease = int_field(o, "lease");
        kv.mod_revision = int_field(o, "mod_revision");
        out.kvs.push_back(std::move(kv));
    }
    return out;
}

} // namespace

Result<EtcdRange> EtcdClient::range_prefix(std::string_view prefix) {
    return range_of(
        m_impl->call("/v3/kv/range", {{"key", base64_encode(prefix)},
                                      {"range_end", base64_encode(prefix_range_end(prefix))}}));
}

Result<EtcdRange> EtcdClient::get(std::string_view key) {
    return range_of(m_impl->call("/v3/kv/range", {{"key", base64_encode(key)}}));
}

Status EtcdClient::delete_key(std::string_view key) {
    auto r = m_impl->call("/v3/kv/deleterange", {{"key", base64_encode(key)}});
    if (!r) {
        return r.error();
    }
    return {};
}

Status EtcdClient::write_batch(const std::vector<EtcdWrite>& writes) {
    json::array success;
    for (const auto& w : writes) {
        if (w.erase) {
            success.push_back(json::object{
                {"request_delete_range", json::object{{"key", base64_encode(w.key)}}}});
            continue;
        }
        json::object put{{"key", base64_encode(w.key)}, {"value", base64_encode(w.value)}};
        if (w.lease != 0) {
            put["lease"] = std::to_string(w.lease);
        }
        success.push_back(json::object{{"request_put", std::move(put)}});
    }
    auto r =
        m_impl->call("/v3/kv/txn", {{"compare", json::array{}}, {"success", std::move(success)}});
    if (!r) {
        return r.error();
    }
    return {};
}

const std::string& EtcdClient::endpoint() const {
    static const std::string none = "none";
    return m_impl->urls.empty() ? none : m_impl->urls[m_impl->current];
}

const EtcdTraffic& EtcdClient::traffic() const {
    return m_impl->traffic;
}

} // namespace agentlock
