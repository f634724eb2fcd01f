"""What labelling tools write, read as semantic labels: COCO-format annotation files, labelme's
files, YOLO segmentation datasets and Supervisely projects (`segnext.data.exports` converts them
into the folder layout)."""
