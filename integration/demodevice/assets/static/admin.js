// Firmware update: sends the chosen file as the raw body of POST /upload.
"use strict";
(function () {
  const input = document.getElementById("fw-file");
  const button = document.getElementById("fw-upload");
  const out = document.getElementById("fw-result");
  if (!input || !button) return;
  button.addEventListener("click", async () => {
    const file = input.files && input.files[0];
    if (!file) { out.textContent = "Choose an image first."; return; }
    out.textContent = "Uploading " + file.name + " (" + file.size + " bytes)…";
    try {
      const res = await fetch("/upload", { method: "POST", body: file,
        headers: { "Content-Type": "application/octet-stream" } });
      const r = await res.json();
      out.textContent = "Received " + r.bytes + " bytes, SHA-256 " + r.sha256;
    } catch (err) {
      out.textContent = "Upload failed: " + err;
    }
  });
})();
