// Package static serves a device's web UI from a directory (CONTRACT D5): GET and HEAD, content types
// from the extension, index.html for directories, no listings, ETag and Last-Modified with 304 (and 412
// on a failed If-Match or If-Unmodified-Since), a single byte range (206, 416), precompressed NAME.gz
// siblings, and file bodies sent with sendfile(2).
//
// Nothing outside the root is reachable: the request path is percent-decoded once, any "." or ".."
// segment is refused, and files are opened with openat2(2) and RESOLVE_BENEATH relative to the root's
// descriptor, so that the kernel itself refuses a symlink that leaves the root. All refusals answer 404,
// so that they tell nothing about the file system.
package static

import "errors"

// ErrNotDirectory is returned by New when the web root is not a directory.
var ErrNotDirectory = errors.New("static: web root is not a directory")

// contentTypes maps file extensions to media types; others are application/octet-stream.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".htm":   "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".txt":   "text/plain; charset=utf-8",
	".csv":   "text/csv; charset=utf-8",
	".xml":   "application/xml",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".jpg":   "image/jpeg",
	".jpeg":  "image/jpeg",
	".gif":   "image/gif",
	".webp":  "image/webp",
	".avif":  "image/avif",
	".ico":   "image/x-icon",
	".wasm":  "application/wasm",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".pdf":   "application/pdf",
	".mp4":   "video/mp4",
	".webm":  "video/webm",
	".gz":    "application/gzip",
	".zip":   "application/zip",
	".bin":   "application/octet-stream",
}

func contentType(name []byte) string {
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == '.' {
			ext := name[i:]
			var low [8]byte
			if len(ext) > len(low) {
				break
			}
			for j, c := range ext {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				low[j] = c
			}
			if t, ok := contentTypes[string(low[:len(ext)])]; ok {
				return t
			}
			break
		}
	}
	return "application/octet-stream"
}
