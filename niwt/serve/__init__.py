"""``niwt serve``: a local page on a finished run, where a person drops photos, sees what the
network says and why, and teaches it a new class in a sentence.

* :mod:`~niwt.serve.images`: uploads decoded defensively;
* :mod:`~niwt.serve.session`: the run being served, one lock around its model, its changes saved
  as run directories;
* :mod:`~niwt.serve.access`: who may ask (the token, the Host and Origin checks);
* :mod:`~niwt.serve.page`: the page's HTML, CSS and JavaScript;
* :mod:`~niwt.serve.app`: the routes;
* :mod:`~niwt.serve.server`: starting and stopping the server.
"""
