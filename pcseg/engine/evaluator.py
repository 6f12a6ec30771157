"""Evaluation at full resolution: every original point takes its voxel's prediction through the inverse map;
optional rotation test-time augmentation; per-scene predictions saved as .npy; metrics reduced over ranks."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from pcseg.data import PointDataset, Scene, collate, voxelize_scene
from pcseg.engine import distributed as dist_utils
from pcseg.engine.metrics import SegMetrics


def rotate_z(scene: Scene, angle: float) -> Scene:
    """The scene rotated by `angle` radians about the vertical axis through its bounding-box centre."""
    if angle == 0.0:
        return scene
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    center = (scene.coord.min(0) + scene.coord.max(0)) / 2
    normal = None if scene.normal is None else (scene.normal @ rot.T).astype(np.float32)
    return scene.replace(coord=((scene.coord - center) @ rot.T + center).astype(np.float32), normal=normal)


class Evaluator:
    """Scores a method (anything with `predict(PointBatch) -> (N, K) logits`) on every scene of `dataset`.

    dataset        PointDataset of the evaluation split; its scenes are read from its source without augmentation
                   or budget, so labels are the complete annotation (-1 = ignored)
    batch_size     scenes per forward pass
    tta_rotations  R >= 1: softmax probabilities averaged over rotations by 2 pi r / R about z (R = 1: none)
    Under DDP rank r takes scenes r, r + W, ... and the confusion matrices are summed over ranks.
    """

    def __init__(self, dataset: PointDataset, device: Union[str, torch.device] = "cpu", batch_size: int = 1,
                 tta_rotations: int = 1, progress: bool = False) -> None:
        if len(dataset) == 0:
            raise ValueError("the evaluation split has no scenes")
        self.dataset, self.device = dataset, torch.device(device)
        self.batch_size, self.tta_rotations, self.progress = batch_size, tta_rotations, progress

    @torch.no_grad()
    def __call__(self, module: nn.Module, save_dir: Optional[Union[str, Path]] = None) -> Dict[str, object]:
        """Returns SegMetrics.summary() (miou, acc, iou per class, points) over all ranks' scenes. With `save_dir`,
        writes `<save_dir>/<scene_id>.npy`: (N,) int64 predicted class of every point, in the scene's order."""
        from tqdm.auto import tqdm

        was_training = module.training
        module.eval()
        metrics = SegMetrics(self.dataset.num_classes, self.dataset.class_names)
        mine = list(range(dist_utils.rank(), len(self.dataset), dist_utils.world_size()))
        bar = tqdm(total=len(mine), desc="eval", unit="scene", disable=not (self.progress and dist_utils.is_main()),
                   dynamic_ncols=True, leave=False)
        for start in range(0, len(mine), self.batch_size):
            scenes = [self.dataset.source[i] for i in mine[start:start + self.batch_size]]  # full labels
            probs = [torch.zeros(s.num_points, self.dataset.num_classes) for s in scenes]
            for r in range(self.tta_rotations):
                angle = 2 * math.pi * r / self.tta_rotations
                samples = [voxelize_scene(rotate_z(s, angle), self.dataset.voxel_size, self.dataset.features)
                           for s in scenes]
                batch = collate(samples).to(self.device)
                p = torch.softmax(module.predict(batch).float(), dim=1).cpu()
                ends = batch.offset.cpu().tolist()
                for b, (lo, hi) in enumerate(zip([0] + ends[:-1], ends)):
                    probs[b] += p[lo:hi]
            for scene, prob in zip(scenes, probs):
                pred = prob.argmax(1)
                metrics.update(pred, torch.from_numpy(np.asarray(scene.label, dtype=np.int64)))
                if save_dir is not None:
                    path = Path(save_dir) / f"{scene.scene_id}.npy"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, pred.numpy().astype(np.int64))
            bar.update(len(scenes))
        bar.close()
        metrics.all_reduce()
        module.train(was_training)
        return metrics.summary()
