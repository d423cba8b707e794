"""The pipeline's report: one model of its content, rendered to Markdown and to HTML.

`model.build_report` gathers every figure once from the stage outputs (typed records of
`facenet_edgetpu.lib.records` and the compile result); `render` lays that model out with the
Jinja2 templates in `templates/` (escaping on for HTML) and the stylesheet `report.css`;
`svg` computes the geometry of the operator strip and the memory bar; `metrics` writes the
DVC metrics and plot data. The report stage (`facenet_edgetpu.stages.report`) ties them up.
"""
