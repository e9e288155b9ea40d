// Draws every chart of the page from the JSON figure beside it (no inline script).
(function () {
  "use strict";
  var config = { responsive: true, displaylogo: false, displayModeBar: false };
  document.querySelectorAll("[data-figure]").forEach(function (element) {
    var source = document.getElementById(element.getAttribute("data-figure"));
    var figure = JSON.parse(source.textContent);
    var layout = Object.assign({ autosize: true }, figure.layout);
    if (window.matchMedia("(max-width: 800px)").matches) {
      layout.margin = Object.assign({}, layout.margin, { l: 44, r: 8 });
    }
    Plotly.newPlot(element, figure.data, layout, config).then(function () {
      element.setAttribute("data-rendered", "true");
    });
  });
})();
