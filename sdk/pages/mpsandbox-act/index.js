// The act-as-the-user page of mpsandbox's wx.* shim. For a manual session
// the shim opens this page with the sandbox's /act/{session} page as `url`;
// the person chooses there (pay, cancel, …), and the shim, which keeps
// waiting for the session's return, closes this page and delivers the way
// back. Copy this directory to the mini-program and list
// "pages/mpsandbox-act/index" in app.json's pages (develop and trial builds).
Page({
  data: { url: '' },
  onLoad(query) {
    // Page queries arrive still percent-encoded.
    this.setData({ url: decodeURIComponent((query && query.url) || '') });
  },
});
