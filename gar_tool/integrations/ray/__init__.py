"""Scale-out on Ray (optional extra ``gar-agent[ray]``): a Ray Serve application and Ray Data batch QA.

* :mod:`.serve_app` — the Serve application (deployments ``GARModels``, ``Grounding``,
  ``SessionStore``, ``Front``), built by ``build`` / ``build_app``; ``gar serve --ray``.
* :mod:`.config` — its settings (:class:`~.config.ServeAppConfig`) and the Serve config file loader.
* :mod:`.proxies` — the front's stand-ins for the remote components (a GARBackend, a detector, a
  segmenter, the shared session store); :mod:`.wire` — what crosses the wire, and errors.
* :mod:`.batch` — ``gar batch``: manifests → answers with evidence, in process or on Ray Data
  (:mod:`.data_pipeline`), resumable; :mod:`.items` — one item's ground and answer steps.

Only :mod:`.serve_app`, :mod:`.data_pipeline` and :mod:`.launch` import Ray; importing this package does not.
"""

from __future__ import annotations

__all__: list[str] = []
