"""Kiln's runtime inside Blender: everything the operators and panels call that is not
itself an operator or a panel. It imports nothing from operators/, panels/,
preferences.py or props.py (the last two import it), and importing it registers nothing.

    paths         user folder, log, output folder, model, the engine's Python (from the
                  preferences, read as values)
    discovery     which Python has torch: one cached search on a background thread
    session       the engine client, the running job, the timer that polls it
    jobs          the panel's settings as engine requests (generate, prompt list, morph)
    restyle       a mesh out to the engine and its new texture back onto the mesh
    importer      an engine result (GLB) into the scene
    splats        a Gaussian-splat result (.ply) as a point cloud with the splat attributes
    history       recent results in the output folder, with thumbnails
    engine_setup  the "Set up engine" worker (venv + pip)
    ui            redraw, a context with a window, undo steps, wrapped text
    testing       the one testing seam (timer path in background Blender, a slow engine)
"""

from . import engine_setup, history, paths, session


def register():
    history.register()
    session.register()
    paths.start_discovery()


def unregister():
    paths.stop_discovery()
    engine_setup.stop_redraw()
    session.unregister()
    history.unregister()
