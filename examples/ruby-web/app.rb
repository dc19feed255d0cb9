# A tiny web app on Ruby's standard library: a greeting at `/`, and at `/facts` what it
# can see of where it runs.
require "json"
require "socket"

def facts
  {
    cwd: Dir.pwd,
    pid: Process.pid,
    processes: Dir.children("/proc").count { |name| name.match?(/\A\d+\z/) },
    uid: Process.uid,
    probe: ENV["PROBE"] ? File.exist?(ENV["PROBE"]) : nil,
    ruby: RUBY_VERSION,
    bundler: defined?(Bundler) ? Bundler::VERSION : nil,
    version: ENV["SAGACTL_VERSION"],
  }
end

server = TCPServer.new("127.0.0.1", Integer(ENV.fetch("PORT", "8080")))
Signal.trap("TERM") { exit }
loop do
  client = server.accept
  path = client.gets.to_s.split[1]
  while (line = client.gets) && line != "\r\n"; end
  body, kind = if path == "/facts"
    [JSON.generate(facts) + "\n", "application/json"]
  else
    ["hello from #{ENV["SAGACTL_VERSION"]}\n", "text/plain"]
  end
  client.write("HTTP/1.1 200 OK\r\nContent-Type: #{kind}\r\n" \
               "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}")
  client.close
end
