"""The way many serve ONNX today: a minimal FastAPI app wrapping onnxruntime, answering the same
TF Serving predict requests as onnx-serve, for benchmarks/batching_load.py. Each request runs
on its own (no batching), in Starlette's thread pool, one ORT session per model.

    MODEL_DIR=/path/with/<name>.onnx uvicorn app:app --app-dir benchmarks/fastapi_ort --port 8600
"""
import os

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

app = FastAPI()
options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("THREADS", str(os.cpu_count() or 1)))
sessions = {
    file[: -len(".onnx")]: ort.InferenceSession(os.path.join(os.environ["MODEL_DIR"], file), options,
                                                 providers=["CPUExecutionProvider"])
    for file in sorted(os.listdir(os.environ["MODEL_DIR"])) if file.endswith(".onnx")
}


@app.post("/v1/models/{name}:predict")
async def predict(name: str, request: Request):
    session = sessions.get(name)
    if session is None:
        raise HTTPException(404, "unknown model")
    payload = orjson.loads(await request.body())
    feeds = {session.get_inputs()[0].name: np.asarray(payload["instances"], dtype=np.float32)}
    outputs = await run_in_threadpool(session.run, None, feeds)
    names = [o.name for o in session.get_outputs()]
    # Several outputs: one object per row. `tolist()` turns ORT's numpy.longlong scalars (which
    # orjson cannot serialise) into plain numbers.
    predictions = outputs[0] if len(names) == 1 else [dict(zip(names, (o[i].tolist() for o in outputs)))
                                                      for i in range(len(outputs[0]))]
    return Response(orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")
