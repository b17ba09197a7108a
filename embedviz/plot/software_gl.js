// embedviz: where WebGL is software-rendered (SwiftShader, llvmpipe: no GPU, e.g. a
// headless browser or a remote desktop), drawing 100k points through it is several
// times slower than Bokeh's plain canvas; hide WebGL so BokehJS falls back to canvas.
// Open the page with ?webgl=force to keep WebGL anyway.
(function () {
  try {
    if (/[?&]webgl=force\b/.test(window.location.search)) return
    const probe = document.createElement("canvas")
    const gl = probe.getContext("webgl")
    if (gl == null) return
    const info = gl.getExtension("WEBGL_debug_renderer_info")
    const renderer = info != null ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : ""
    const lose = gl.getExtension("WEBGL_lose_context")
    if (lose != null) lose.loseContext()
    if (!/swiftshader|llvmpipe|softpipe|software/i.test(renderer)) return
    window.embedviz_software_gl = renderer
    const getContext = HTMLCanvasElement.prototype.getContext
    HTMLCanvasElement.prototype.getContext = function (type, ...args) {
      if (type == "webgl" || type == "webgl2" || type == "experimental-webgl") return null
      return getContext.call(this, type, ...args)
    }
  } catch (err) {
    // leave WebGL alone
  }
})()
