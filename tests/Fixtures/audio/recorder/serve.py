import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(sys.argv[1],'rb').read()
        self.send_response(200); self.send_header('Content-Type','text/html'); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0)); data = self.rfile.read(n)
        if self.path == '/upload': open(sys.argv[2],'wb').write(data)
        else: print(data.decode(), flush=True)
        self.send_response(200); self.send_header('Content-Length','0'); self.end_headers()
    def log_message(self, *a): pass
# Serves the recorder page on loopback, writes the uploaded recording, prints the page's log lines.
http.server.HTTPServer(('127.0.0.1', int(sys.argv[3])), H).serve_forever()
